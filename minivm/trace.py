"""The trace: one line per VM exit, the story of trap-and-emulate.

    insns  pc          where            instruction          exit  what the host did
       41  0x80000110  putc+0x8         lbu a5, 5(a4)        MMIO  uart0.LSR  read  0x60
       43  0x80000118  putc+0x10        sb a0, 0(a4)         MMIO  uart0.THR  write 0x48 'H'

Everything in a line comes from the guest's own state (the instruction
count, not host time), so the same firmware gives the same trace, byte for
byte, on every run.
"""
class Disassembler:
    """Capstone, with one decoded line per pc kept for the next time."""

    def __init__(self, xlen):
        import capstone
        mode = capstone.CS_MODE_RISCV64 if xlen == 64 else capstone.CS_MODE_RISCV32
        self.cs = capstone.Cs(capstone.CS_ARCH_RISCV, mode | capstone.CS_MODE_RISCVC)
        self.cache = {}

    def instruction(self, read_bytes, pc):
        text = self.cache.get(pc)
        if text is None:
            try:
                code = read_bytes(pc, 4)
            except ValueError:
                return "??"
            decoded = next(self.cs.disasm(code, pc, 1), None)
            text = f"{decoded.mnemonic} {decoded.op_str}".strip() if decoded else "(invalid)"
            self.cache[pc] = text
        return text


# What --trace=LIST may name; plain --trace shows them all.
CATEGORIES = ("mmio", "traps", "irq", "virtio", "exits")


def parse_categories(text):
    """"mmio,traps" -> {"mmio", "traps"}; ValueError naming an unknown one."""
    if text in (None, "", "all"):
        return set(CATEGORIES)
    wanted = {word.strip() for word in text.split(",") if word.strip()}
    unknown = wanted - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown trace categories {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(CATEGORIES)})")
    return wanted


class Tracer:
    def __init__(self, out, vcpu, ram, symbols, categories=CATEGORIES):
        self.categories = set(categories)
        self.out = out
        self.vcpu = vcpu
        self.ram = ram
        self.symbols = symbols
        self.disassembler = Disassembler(vcpu.xlen)
        self.pc_digits = vcpu.xlen // 4

    def mmio(self, name, device, offset, size, value, is_write):
        if "mmio" not in self.categories:
            return
        register = device.register_name(offset, is_write)
        direction = "write" if is_write else "read "
        note = device.describe(offset, value, is_write)
        detail = f"{name}.{register:<6} {direction} 0x{value:0{size * 2}x}"
        self._line("MMIO", f"{detail} {note}".rstrip())

    def note(self, kind, detail):
        """A line about the machine rather than an exit (e.g. a mapping at start-up)."""
        self.out.write(f"{'':>10}  {'':<{self.pc_digits + 2}}  {'':<20} {'':<24} {kind:<6} {detail}\n")

    def exit(self, exit, detail, kind=None):
        kind = kind or exit.reason.value
        category = {"TRAP": "traps", "IRQ": "irq"}.get(kind, "exits")
        if category in self.categories:
            self._line(kind, detail, pc=exit.pc)

    def virtio_request(self, name, head, kind, sector, length, status):
        """One request a virtio notify served (decoded by the Python twin)."""
        if "virtio" not in self.categories:
            return
        kinds = {0: "IN", 1: "OUT", 4: "FLUSH", 8: "GET_ID"}
        statuses = {0: "OK", 1: "IOERR", 2: "UNSUPP"}
        self._line("VIRTIO", f"{name} request {head}: {kinds.get(kind, f'type {kind}')} "
                             f"sector {sector} length {length} -> "
                             f"{statuses.get(status, status)}")

    def _line(self, kind, detail, pc=None):
        if pc is None:
            pc = self.vcpu.pc
        where = self.symbols.lookup(pc)
        instruction = self.disassembler.instruction(self._read_code, pc)
        count = self.vcpu.clocks.instructions.count
        self.out.write(f"{count:>10}  0x{pc:0{self.pc_digits}x}  {where:<20} "
                       f"{instruction:<24} {kind:<6} {detail}\n")

    def _read_code(self, pc, length):
        return self.ram.read(pc, min(length, self.ram.base + self.ram.size - pc))
