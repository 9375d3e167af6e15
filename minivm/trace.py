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


class Tracer:
    def __init__(self, out, vcpu, ram, symbols):
        self.out = out
        self.vcpu = vcpu
        self.ram = ram
        self.symbols = symbols
        self.disassembler = Disassembler(vcpu.xlen)
        self.pc_digits = vcpu.xlen // 4

    def mmio(self, name, device, offset, size, value, is_write):
        register = device.register_name(offset, is_write)
        direction = "write" if is_write else "read "
        note = device.describe(offset, value, is_write)
        detail = f"{name}.{register:<6} {direction} 0x{value:0{size * 2}x}"
        self._line("MMIO", f"{detail} {note}".rstrip())

    def note(self, kind, detail):
        """A line about the machine rather than an exit (e.g. a mapping at start-up)."""
        self.out.write(f"{'':>10}  {'':<{self.pc_digits + 2}}  {'':<20} {'':<24} {kind:<6} {detail}\n")

    def exit(self, exit, detail, kind=None):
        self._line(kind or exit.reason.value, detail, pc=exit.pc)

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
