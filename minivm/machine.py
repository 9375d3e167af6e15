"""The board: the memory map, the devices on it, and the run loop.

    machine = Machine("firmware/hello.elf")
    result = machine.run()
    print(result.exit_code, result.output)

The run loop is the heart of a hypervisor, so it is kept short:

    while True:
        exit = vcpu.run()              # run the guest until it needs the host
        result = self.handle(exit)     # emulate what it asked for
        if result: return result
"""
import os
import sys
from collections import namedtuple

from minivm.bus import Bus, Ram
from minivm.cpu import ExitReason, Vcpu
from minivm.devices.finisher import Finisher
from minivm.devices.uart import Uart16550
from minivm.errors import MinivmError
from minivm.loader import load_program, read_program


# size is None for RAM: each machine chooses its own (--memory).
MapEntry = namedtuple("MapEntry", "base size irq", defaults=(None,))


# The physical memory map, laid out as on QEMU's `virt` board
# (hw/riscv/virt.c, virt_memmap[]) so the same firmware runs on both.
MEMORY_MAP = {
    "finisher": MapEntry(0x0010_0000, 0x1000),
    "uart0":    MapEntry(0x1000_0000, 0x100, irq=10),
    "ram":      MapEntry(0x8000_0000, None),
}

DEFAULT_MEMORY = 128 << 20
MAX_MEMORY = 16 << 30

# Exit statuses for runs the guest did not end through the finisher.
EXIT_LIMIT = 124           # --max-insns reached (as timeout(1) uses 124)
EXIT_GUEST_ERROR = 125     # the guest did something no machine can recover from
EXIT_INTERRUPTED = 130     # Ctrl-C (128 + SIGINT)


class RunResult:
    """How a run ended.

    exit_code     the finisher's code, or EXIT_LIMIT / EXIT_GUEST_ERROR / EXIT_INTERRUPTED
    reason        the ExitReason of the last exit
    output        what the guest printed, when it was not sent to a stream
    instructions  guest instructions run, when they were counted (else None)
    message       why the run ended, for runs that did not finish cleanly
    stats         traps per device and register (Machine.stats())
    """

    def __init__(self, exit_code, reason, output=b"", instructions=None, message="",
                 stats=None):
        self.exit_code = exit_code
        self.reason = reason
        self.output = output
        self.instructions = instructions
        self.message = message
        self.stats = stats or {}

    def __repr__(self):
        return f"RunResult(exit_code={self.exit_code}, reason={self.reason.name})"


def parse_memory(text):
    """QEMU-style sizes: 128M, 1G, 64MiB, or a plain number of MiB."""
    units = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    value = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (value[:-1], value[-1]) if value[-1:] in "KMG" else (value, "")
    try:
        size = int(number) * units[unit]
    except ValueError:
        raise MinivmError(f"bad memory size {text!r}: use a number with K, M or G, e.g. 128M")
    if size <= 0 or size % 4096:
        raise MinivmError(f"bad memory size {text!r}: must be a positive multiple of 4 KiB")
    if size > MAX_MEMORY:
        raise MinivmError(f"bad memory size {text!r}: at most {MAX_MEMORY >> 30}G")
    return size


class Console:
    """Where the UART's transmitted bytes go: a stream, or kept in memory."""

    def __init__(self, stream=None):
        self.stream = stream
        self.captured = bytearray()

    def write(self, data):
        if self.stream is None:
            self.captured += data
            return
        try:
            self.stream.write(data)
            if b"\n" in data:   # line-buffered: output appears as the guest writes lines
                self.stream.flush()
        except BrokenPipeError:
            self._reader_went_away()

    def flush(self):
        if self.stream is not None:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_went_away()

    def _reader_went_away(self):
        # `minivm run | head` closes the pipe early; like a real serial line
        # with nobody listening, the guest's bytes are dropped from then on.
        self.stream = open(os.devnull, "wb")
        try:
            os.dup2(self.stream.fileno(), sys.stdout.fileno())  # quiet interpreter exit
        except (OSError, ValueError):
            pass


class Machine:
    def __init__(self, firmware, memory=DEFAULT_MEMORY, max_insns=None, trace=None,
                 stdout=None):
        """Assemble a machine and load `firmware` (an ELF path).

        memory: RAM size in bytes or a string like "256M".  max_insns: stop
        after this many guest instructions.  trace: a text stream that gets
        one line per VM exit.  stdout: a binary stream for the UART output;
        without one, output is kept and returned in the RunResult.
        """
        self.program = read_program(os.fspath(firmware))
        memory = parse_memory(memory) if isinstance(memory, str) else memory
        if memory <= 0 or memory % 4096 or memory > MAX_MEMORY:
            raise MinivmError(f"bad memory size {memory}")
        self.max_insns = max_insns
        self.vcpu = Vcpu(self.program.xlen)
        self.bus = Bus(self.vcpu.uc)
        self.ram = Ram(MEMORY_MAP["ram"].base, memory)
        self.console = Console(stdout)
        self.devices = {}
        self._assemble()
        self.tracer = None
        if trace is not None:
            from minivm.trace import Tracer
            self.tracer = Tracer(trace, self.vcpu, self.ram, self.program.symbols)
            self.bus.tracer = self.tracer
        self._boot()

    def _assemble(self):
        self.bus.add_ram("ram", self.ram)
        self._add_device("finisher", Finisher(on_finish=self._on_finish, on_reset=self._on_reset))
        self._add_device("uart0", Uart16550(output=self.console.write))

    def _add_device(self, name, device):
        entry = MEMORY_MAP[name]
        self.devices[name] = device
        self.bus.add_device(name, entry.base, device, entry.irq)

    def _boot(self):
        load_program(self.program, self.ram)
        self.vcpu.pc = self.program.entry

    def reset(self):
        """What the finisher's 0x7777 does: devices to power-on state, reload, restart."""
        for device in self.devices.values():
            device.reset()
        self._boot()

    # -- devices asking for the run loop ----------------------------------------

    def _on_finish(self, status):
        self.vcpu.request_exit(self._exit(ExitReason.FINISH, code=status))

    def _on_reset(self):
        self.vcpu.request_exit(self._exit(ExitReason.RESET))

    def _exit(self, reason, **details):
        from minivm.cpu.exits import Exit
        return Exit(reason, self.vcpu.pc, **details)

    # -- the run loop ------------------------------------------------------------

    def run(self, max_insns=None):
        """Run until the guest finishes (or the budget runs out); returns a RunResult.

        max_insns overrides the machine's budget: the total number of guest
        instructions since power-on.  A run that stopped at its budget can be
        continued by calling run() again with a larger one.
        """
        budget = self.max_insns if max_insns is None else max_insns
        self._set_up_clock(budget)
        while True:
            exit = self.vcpu.run()
            self.console.flush()
            result = self.handle(exit)
            if result is not None:
                return result

    def _set_up_clock(self, budget):
        # Count instructions only when something needs the count (DESIGN.md
        # fact 6: counting costs ~4x): a budget, or the trace's insn column.
        clock = self.vcpu.clock
        if budget is not None or self.tracer is not None:
            clock.set_limit(budget)
            clock.attach()
        else:
            clock.detach()

    def handle(self, exit):
        """Emulate what the exit asks for; a RunResult when the run is over."""
        reason = exit.reason
        if reason is ExitReason.RESET:
            self._trace_exit(exit, "machine reset")
            self.reset()
            return None
        if reason is ExitReason.FINISH:
            return self._end(exit, exit.code, f"exit status {exit.code}")
        if reason is ExitReason.LIMIT:
            return self._end(exit, EXIT_LIMIT,
                             f"stopped after {self.vcpu.clock.count} instructions (--max-insns)")
        if reason is ExitReason.INTERRUPTED:
            return self._end(exit, EXIT_INTERRUPTED, "interrupted")
        return self._end(exit, EXIT_GUEST_ERROR, self._describe_failure(exit))

    def _describe_failure(self, exit):
        where = self._where(exit.pc)
        if exit.reason is ExitReason.BUS_ERROR:
            return (f"bus error: guest {exit.access} at unmapped address "
                    f"0x{exit.address:x} (pc {where})")
        if exit.reason is ExitReason.TRAP:
            return f"guest exception (cause {exit.cause}) at pc {where}"
        if exit.reason is ExitReason.HALT:
            return f"guest halted (wfi) with no interrupt source to wake it (pc {where})"
        return f"guest stopped: {exit.reason.value} at pc {where}"

    def _where(self, pc):
        symbol = self.program.symbols.lookup(pc)
        return f"0x{pc:x} <{symbol}>" if symbol else f"0x{pc:x}"

    def _end(self, exit, exit_code, message):
        self._trace_exit(exit, message)
        clean = exit.reason is ExitReason.FINISH
        return RunResult(
            exit_code=exit_code,
            reason=exit.reason,
            output=bytes(self.console.captured),
            instructions=self.vcpu.clock.count if self.vcpu.clock.attached else None,
            message="" if clean else message,
            stats=self.stats())

    def _trace_exit(self, exit, detail):
        if self.tracer is not None:
            self.tracer.exit(exit, detail)

    # -- reporting -----------------------------------------------------------------

    def stats(self):
        """Traps per device, and per register, since power-on."""
        report = {}
        for name, device in self.devices.items():
            registers = {}
            for (offset, size, is_write, bank), count in sorted(device.traps.items()):
                register = device.register_name(offset, is_write, bank)
                key = f"{register} {'write' if is_write else 'read'}"
                registers[key] = registers.get(key, 0) + count
            report[name] = {"traps": device.trap_count(), "bytes": device.bytes_moved(),
                            "registers": registers}
        return report

    def memory_map(self):
        """(name, base, size, irq) for every region of this machine, by address."""
        return [(r.name, r.base, r.size, r.irq) for r in self.bus.regions]


def print_stats(result, stream=sys.stderr):
    from minivm.fastpath import describe
    counted = (f"{result.instructions} instructions" if result.instructions is not None
               else "instructions not counted (free-running)")
    print(f"minivm stats: {counted}; {describe()}", file=stream)
    print(f"  {'device':<10} {'traps':>9} {'bytes':>9}  registers", file=stream)
    for name, numbers in result.stats.items():
        registers = ", ".join(f"{key} {count}" for key, count in numbers["registers"].items())
        print(f"  {name:<10} {numbers['traps']:>9} {numbers['bytes']:>9}  {registers}",
              file=stream)
