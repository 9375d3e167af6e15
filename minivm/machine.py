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
from minivm.console import ByteInput, Console
from minivm.cpu import Exit, ExitReason, Vcpu, traps
from minivm.cpu.clock import UNLIMITED, later
from minivm.cpu.csrs import HostCsrs
from minivm.devices.clint import CLOCK_READ_TICKS, INSTRUCTIONS_PER_TICK, TIMEBASE_HZ, Clint
from minivm.devices.finisher import Finisher
from minivm.devices.passthrough import PassthroughWindow
from minivm.devices.piodisk import DiskImage, PioDisk
from minivm.devices.plic import Plic
from minivm.devices.uart import Uart16550
from minivm.devices.virtio_blk import VirtioBlk
from minivm.devices.virtio_mmio import VirtioMmio
from minivm.errors import MinivmError
from minivm.expect import Expect
from minivm.hostfiles import split_option
from minivm.loader import load_program, read_program

# size is None for RAM: each machine chooses its own (--memory).
MapEntry = namedtuple("MapEntry", "base size irq", defaults=(None,))

# The physical memory map, laid out as on QEMU's `virt` board
# (hw/riscv/virt.c, virt_memmap[]) so the same firmware runs on both.
MEMORY_MAP = {
    "finisher": MapEntry(0x0010_0000, 0x1000),
    "clint":    MapEntry(0x0200_0000, 0x10000),
    "plic":     MapEntry(0x0C00_0000, 0x600000),
    "uart0":    MapEntry(0x1000_0000, 0x100, irq=10),
    **{f"virtio{n}": MapEntry(0x1000_1000 + n * 0x1000, 0x1000, irq=1 + n) for n in range(8)},
    # minivm's own devices, at addresses QEMU `virt` leaves free
    # (between fw_cfg at 0x1010_0000 and the flash at 0x2000_0000).
    "piodisk":  MapEntry(0x1020_0000, 0x1000, irq=12),
    "ram":      MapEntry(0x8000_0000, None),
}

# PLIC contexts and the mip bit each one drives (hart 0 only).
PLIC_CONTEXT_INTERRUPTS = {0: traps.MEI, 1: traps.SEI}

VIRTIO_SLOTS = 8
# Physical address bits a hart can reach (Sv39 and Sv32 page-table entries).
PHYSICAL_ADDRESS_BITS = {64: 56, 32: 34}
DEFAULT_MEMORY = 128 << 20
MAX_MEMORY = 16 << 30

# Input reaches the UART at 115200 baud, 10 bits a byte, in virtual time.
INPUT_BYTE_INSTRUCTIONS = 10_000_000 * INSTRUCTIONS_PER_TICK // 11_520
# With --clock host, a guest's timer is checked against the host's clock
# this often (in guest instructions), since no instruction count says when.
HOST_CLOCK_POLL = 1_000_000
# ...and a halted guest sleeps at most this long (seconds) between checks.
HOST_CLOCK_NAP = 1.0

# Exit statuses for runs the guest did not end through the finisher.
EXIT_BAD_INPUT = 2         # as for bad input found before the run
EXIT_LIMIT = 124           # --max-insns reached (as timeout(1) uses 124)
EXIT_GUEST_ERROR = 125     # the guest did something no machine can recover from
EXIT_INTERRUPTED = 130     # Ctrl-C (128 + SIGINT)
EXIT_KILLED = 137          # gdb's `k` (128 + SIGKILL, what gdb sends a native process)


class RunResult:
    """How a run ended.

    exit_code     the finisher's code, or EXIT_LIMIT / EXIT_GUEST_ERROR / EXIT_INTERRUPTED /
                  EXIT_KILLED / EXIT_BAD_INPUT
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


def virtio_disk_from_option(text):
    """`IMAGE[,ro][,legacy]`, as --virtio-blk takes it: (DiskImage, legacy)."""
    path, options = split_option(text)
    if not path or any(option not in ("ro", "legacy") for option in options):
        raise MinivmError(f"bad virtio-blk {text!r}: use IMAGE[,ro][,legacy] "
                          f"(,, for a comma in IMAGE)")
    return DiskImage(path, read_only="ro" in options), "legacy" in options


def virtqueue_twin():
    """The Cython process_block_queue, or the pure-Python one (MINIVM_PURE=1)."""
    from minivm.devices.virtio_blk import process_block_queue
    from minivm.fastpath import fastpath
    native = fastpath()
    return getattr(native, "process_block_queue", None) or process_block_queue


def parse_memory(text):
    """QEMU-style sizes: 128M, 1G, 64MiB, or a plain number of MiB."""
    units = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    value = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (value[:-1], value[-1]) if value[-1:] in ("K", "M", "G") else (value, "")
    try:
        size = int(number) * units[unit]
    except ValueError:
        raise MinivmError(f"bad memory size {text!r}: use a number with K, M or G, e.g. 128M")
    if size <= 0 or size % 4096:
        raise MinivmError(f"bad memory size {text!r}: must be a positive multiple of 4 KiB")
    if size > MAX_MEMORY:
        raise MinivmError(f"bad memory size {text!r}: at most {MAX_MEMORY >> 30}G")
    return size


class Machine:
    def __init__(self, firmware, memory=DEFAULT_MEMORY, max_insns=None, trace=None,
                 stdout=None, input=None, clock="virtual", disk=None, passthrough=(),
                 virtio_blk=(), trace_only=None):
        """Assemble a machine and load `firmware` (an ELF path).

        memory: RAM size in bytes or a string like "256M".  max_insns: stop
        after this many guest instructions.  trace: a text stream that gets
        one line per VM exit (trace_only: "mmio,traps,irq,virtio,exits" to
        keep only some).  stdout: a binary stream for the UART output;
        without one, output is kept and returned in the RunResult.  input:
        bytes typed into the UART, or an input source from minivm.console,
        or a minivm.expect.Expect script (type once the guest prints a prompt).
        clock: "virtual" (mtime counts guest instructions: every run the
        same) or "host" (mtime follows the host's clock: runs differ).
        disk: a raw image for the PIO disk, "IMAGE" or "IMAGE,ro".
        passthrough: "PATH@ADDR[,ro|,private]" strings: host files mapped
        into guest memory.  virtio_blk: "IMAGE[,ro][,legacy]" strings, one
        virtio-mmio slot each, from slot 0.
        """
        if clock not in ("virtual", "host"):
            raise MinivmError(f"bad clock {clock!r}: use virtual or host")
        self.host_clock = clock == "host"
        self.host_start = None
        self.program = read_program(os.fspath(firmware))
        memory = parse_memory(memory) if isinstance(memory, str) else memory
        if memory <= 0 or memory % 4096 or memory > MAX_MEMORY:
            raise MinivmError(f"bad memory size {memory}")
        self.max_insns = max_insns
        self.vcpu = Vcpu(self.program.xlen)
        self.bus = Bus(self.vcpu)
        self.ram = Ram(MEMORY_MAP["ram"].base, memory)
        if isinstance(input, (bytes, bytearray, str)):
            input = ByteInput(input.encode() if isinstance(input, str) else input)
        self.console = Console(stdout, input)
        self.script = input if isinstance(input, Expect) else None
        self.devices = {}
        self.uses_time = False          # the guest has used the CLINT or the time CSR
        self.next_input = 0             # virtual time the UART takes its next byte
        self.last_vector = None         # where the last trap sent the guest...
        self.last_trap = None           # ...and why: (cause, epc, tval)
        self.disk_image = DiskImage.from_option(os.fspath(disk)) if disk is not None else None
        self.windows = [PassthroughWindow.from_option(option) for option in passthrough]
        for window in self.windows:
            window.check_address_width(PHYSICAL_ADDRESS_BITS[self.program.xlen])
        if len(virtio_blk) > VIRTIO_SLOTS:
            raise MinivmError(f"at most {VIRTIO_SLOTS} virtio devices")
        self.virtio_disks = [virtio_disk_from_option(option) for option in virtio_blk]
        self._assemble()
        self.csrs = HostCsrs(self.vcpu, now=lambda: self.clint.mtime,
                             on_time_read=self._on_time_read, on_timer_armed=self._on_time_used)
        self.debugger = None
        self.budget = max_insns
        self.tracer = None
        if trace is not None:
            from minivm.trace import Tracer, parse_categories
            try:
                categories = parse_categories(trace_only)
            except ValueError as error:
                raise MinivmError(f"--trace: {error}") from None
            self.tracer = Tracer(trace, self.vcpu, self.ram, self.program.symbols, categories)
            self.bus.tracer = self.tracer
            if "virtio" in categories:
                self._trace_virtio_requests()
            for number, window in enumerate(self.windows):
                self.tracer.note("MAP", f"passthrough{number}: {window.describe()}")
        self._boot()

    # -- assembly: devices on the bus, interrupt lines wired ------------------------

    def _assemble(self):
        self.bus.add_ram("ram", self.ram)
        self._add_device("finisher", Finisher(on_finish=self._on_finish, on_reset=self._on_reset))
        self.clint = Clint(now=self._mtime, on_change=self._on_clint_change,
                           on_time_read=self._on_time_read)
        self._add_device("clint", self.clint)
        self.plic = Plic(on_context=self._on_plic_context)
        self._add_device("plic", self.plic)
        self.uart = Uart16550(output=self._uart_output, irq=self._plic_line("uart0"))
        self._add_device("uart0", self.uart)
        if self.disk_image is not None:
            self._add_device("piodisk", PioDisk(self.disk_image, irq=self._plic_line("piodisk")))
        for slot in range(VIRTIO_SLOTS):
            image, legacy = (self.virtio_disks[slot] if slot < len(self.virtio_disks)
                             else (None, False))
            backend = VirtioBlk(image, virtqueue_twin()) if image is not None else None
            name = f"virtio{slot}"
            self._add_device(name, VirtioMmio(
                backend, legacy, memory=self.ram, irq=self._plic_line(name),
                on_dma=self._on_dma,
                on_fault=lambda text, name=name: self._on_device_fault(name, text)))
        for number, window in enumerate(self.windows):
            self.bus.add_passthrough(f"passthrough{number}", window)

    def _plic_line(self, name):
        source = MEMORY_MAP[name].irq
        return lambda level: self.plic.set_level(source, level)

    def _add_device(self, name, device):
        entry = MEMORY_MAP[name]
        self.devices[name] = device
        self.bus.add_device(name, entry.base, device, entry.irq)

    def _boot(self):
        self._check_entry()
        load_program(self.program, self.ram)
        self.vcpu.pc = self.program.entry

    def _check_entry(self):
        # A device holds registers, not code: the first fetch would fault
        # with no trap handler set up yet, so say what is wrong instead.
        entry = self.program.entry
        device = self.bus.device_at(entry)
        if device is not None:
            raise MinivmError(f"{self.program.path}: entry point 0x{entry:x} is in the "
                              f"{device} device, not in memory")

    def reset(self):
        """What the finisher's 0x7777 does: devices to power-on state, reload, restart."""
        for device in self.devices.values():
            device.reset()
        self.csrs.reset()
        self.vcpu.machine_lines = 0
        self.vcpu.privilege = traps.PRV_M
        self._boot()

    # -- what devices tell the board (during a guest access) ---------------------

    def _on_finish(self, status):
        self.vcpu.request_exit(Exit(ExitReason.FINISH, self.vcpu.pc, code=status))

    def _on_reset(self):
        self.vcpu.request_exit(Exit(ExitReason.RESET, self.vcpu.pc))

    def _uart_output(self, data):
        self.console.write(data)
        if self.script is not None and self.script.observe(data):
            if self.script.done:     # the script's last TEXT: the run is over
                self.vcpu.request_exit(Exit(ExitReason.FINISH, self.vcpu.pc, code=0))
            else:
                self._request_service()   # keys to type: set the input's deadline

    def _on_time_read(self):
        self._clock_read_takes_time()
        self._on_time_used()

    def _on_time_used(self):
        if not self.uses_time:
            # The guest's first look at the clock: from now on virtual time
            # must advance, so the time counter must be attached (outside run()).
            self.uses_time = True
            self._request_service()

    def _clock_read_takes_time(self):
        """A guest read of mtime or the time CSR moves virtual time on (see
        CLOCK_READ_TICKS): a busy-wait on the clock sees time pass."""
        time = self.vcpu.clocks.time
        time.count = later(time.count, CLOCK_READ_TICKS * INSTRUCTIONS_PER_TICK)

    def _mtime(self):
        if self.host_clock:
            import time
            if self.host_start is None:
                self.host_start = time.monotonic()
            return int((time.monotonic() - self.host_start) * TIMEBASE_HZ)
        return self.vcpu.clocks.time.count // INSTRUCTIONS_PER_TICK

    def _on_clint_change(self):
        self.uses_time = True
        self.vcpu.set_interrupt_line(traps.MSI, self.clint.software_pending())
        self.vcpu.set_interrupt_line(traps.MTI, self.clint.timer_pending())
        self._request_service()

    def _on_plic_context(self, context, level):
        self.vcpu.set_interrupt_line(PLIC_CONTEXT_INTERRUPTS[context], level)
        self._request_service()

    def _on_dma(self, low, high):
        # A device wrote guest memory behind Unicorn's back: code translated
        # from there is stale (docs/design.md, U5).  The vCPU drops it once
        # this access is complete.
        self.vcpu.discard_translations(low, high)

    def _on_device_fault(self, name, text):
        # A device refused what the guest's driver asked for.  The driver
        # sees a status bit at best and often just waits forever, so say
        # why, always (QEMU keeps this behind -d guest_errors).
        print(f"minivm: {name}: {text}", file=sys.stderr, flush=True)
        if self.tracer is not None:
            self.tracer.note("FAULT", f"{name}: {text}")

    def _request_service(self):
        """Something changed that the run loop must look at (a deadline, an
        interrupt): stop the guest after the current access."""
        self.vcpu.request_exit(Exit(ExitReason.MMIO, self.vcpu.pc))

    # -- the run loop ------------------------------------------------------------

    def run(self, max_insns=None):
        """Run until the guest finishes (or the budget runs out); returns a RunResult.

        max_insns overrides the machine's budget: the total number of guest
        instructions since power-on.  A run that stopped at its budget can be
        continued by calling run() again with a larger one.
        """
        self.budget = self.max_insns if max_insns is None else max_insns
        self.set_up_instruction_count(self.budget)
        self._prepare_next_run()
        if self.debugger is not None and self.debugger.killed:    # at --gdb-wait's stop
            return self._end(Exit(ExitReason.INTERRUPTED, self.vcpu.pc), EXIT_KILLED,
                             "killed by the debugger")
        while True:
            exit = self.vcpu.run()
            self.console.flush()
            shrunk = self._shrunk_window(exit)
            if shrunk is not None:
                return shrunk
            if self.debugger is not None and self.debugger.owns(exit):
                if self.debugger.stopped(exit) == "kill":
                    return self._end(exit, EXIT_KILLED, "killed by the debugger")
                self._prepare_next_run()
                continue
            result = self.handle(exit)
            if result is not None:
                return result
            self._prepare_next_run()

    def _shrunk_window(self, exit):
        """A RunResult if a passthrough file shrank under its mapping: the
        guest touched a page with no file behind it (the host's SIGBUS)."""
        for window in self.windows:
            address = window.fault()
            if address is not None:
                return self._end(exit, EXIT_BAD_INPUT,
                                 f"{window.path}: the passthrough file shrank while mapped "
                                 f"(the guest's access at 0x{address:x} is past its end)")
        return None

    def _trace_virtio_requests(self):
        for name, device in self.devices.items():
            if isinstance(device, VirtioMmio) and device.backend is not None:
                device.backend.trace_requests(
                    lambda *request, name=name: self.tracer.virtio_request(name, *request))

    def attach_debugger(self, port):
        """Serve gdb's remote protocol on a local TCP port (minivm/gdb.py);
        call .start(wait) on the result before run()."""
        from minivm.gdb import Debugger
        self.debugger = Debugger(self, port)
        return self.debugger

    def set_up_instruction_count(self, budget, counting_wanted=False):
        """Count every instruction only when something needs the exact count
        (docs/design.md, U6: it costs ~4x): a budget, the trace's column,
        --break-on (only the per-instruction hook keeps pc exact inside a
        device access), or the debugger (counting_wanted)."""
        counter = self.vcpu.clocks.instructions
        if budget is not None or self.tracer is not None or self.bus.break_on or counting_wanted:
            counter.set_limit(budget)
            counter.attach()
        else:
            counter.detach()

    def handle(self, exit):
        """Emulate what the exit asks for; a RunResult when the run is over."""
        reason = exit.reason
        if reason is not ExitReason.TRAP:
            self.last_vector = None        # the guest ran since the last trap entry
        if reason in (ExitReason.MMIO, ExitReason.IRQ_WINDOW):
            return None                    # an interrupt to take, a deadline to set: below
        if reason is ExitReason.TRAP:
            return self._handle_trap(exit)
        if reason is ExitReason.TIMER:
            self._advance_devices()
            return None
        if reason is ExitReason.HALT:
            return self._handle_halt(exit)
        if reason is ExitReason.RESET:
            self._trace_exit(exit, "machine reset")
            self.reset()
            return None
        if reason is ExitReason.FINISH:
            return self._end(exit, exit.code, f"exit status {exit.code}")
        if reason is ExitReason.LIMIT:
            count = self.vcpu.clocks.instructions.count
            return self._end(exit, EXIT_LIMIT, f"stopped after {count} instructions (--max-insns)")
        return self._end(exit, EXIT_INTERRUPTED, "interrupted")

    def _handle_trap(self, exit):
        cause, epc, tval = exit.cause, exit.pc, exit.address
        if cause == traps.ILLEGAL_INSTRUCTION and self.csrs.emulate(epc):
            return None               # a CSR Unicorn lacks: done (cpu/csrs.py)
        name = traps.cause_name(cause)
        if epc == self.last_vector:
            first_cause, first_epc, first_tval = self.last_trap
            mtvec = self.vcpu.read_csr(traps.UC_RISCV_REG_MTVEC)
            return self._end(exit, EXIT_GUEST_ERROR,
                             f"double fault: {name} at pc {self.where(epc)} (tval 0x{tval:x}) "
                             f"entering the trap handler (mtvec 0x{mtvec:x}) for "
                             f"{traps.cause_name(first_cause)} at pc {self.where(first_epc)} "
                             f"(tval 0x{first_tval:x})")
        vector = traps.take_trap(self.vcpu, cause, tval, epc)
        self._trace_exit(exit, f"{name} (tval 0x{tval:x}) -> handler {self.where(vector)}")
        self.last_vector, self.last_trap = vector, (cause, epc, tval)
        return None

    def _handle_halt(self, exit):
        """wfi: sleep until an interrupt is waiting, skipping virtual time."""
        self._advance_devices()
        source = self.console.input
        while not self.vcpu.interrupt_waiting():
            if source is not None and source.interactive and self._timer_deadline() is None:
                self._wait_for_key()        # only a person can wake the guest now
                continue
            deadline = self._next_deadline(waking=True)
            if deadline is None:
                return self._end(exit, EXIT_GUEST_ERROR,
                                 f"guest halted (wfi) with nothing that could wake it "
                                 f"(pc {self.where(exit.pc)})")
            self._skip_to(deadline)
            self._advance_devices()
        return None

    def _skip_to(self, deadline):
        """Nothing runs until `deadline`: jump virtual time there at once.
        On the host clock, really wait for the timer instead."""
        time = self.vcpu.clocks.time
        if self.host_clock and self._ticks_until_timer():
            import time as host_time
            host_time.sleep(min(self._ticks_until_timer() / TIMEBASE_HZ, HOST_CLOCK_NAP))
        time.count = max(time.count, deadline)

    def _prepare_next_run(self):
        """Between two runs: take a due interrupt, and set the next deadline."""
        self._advance_devices()
        cause = self.vcpu.interrupt_due()
        if cause is not None:
            pc = self.vcpu.pc
            vector = traps.take_trap(self.vcpu, cause, 0, pc, interrupt=True)
            self.last_vector = None
            if self.tracer is not None:
                self.tracer.exit(Exit(ExitReason.TRAP, pc, cause=cause),
                                 f"{traps.cause_name(cause, True)} -> handler {self.where(vector)}",
                                 kind="IRQ")
        self._arm_time()

    # -- virtual time: the timer and the UART's input ---------------------------------

    def _advance_devices(self):
        """Bring devices up to the current virtual time."""
        self.vcpu.set_interrupt_line(traps.MTI, self.clint.timer_pending())
        supervisor_timer = self.csrs.supervisor_timer_pending()
        if supervisor_timer is not None:
            self.vcpu.set_interrupt_line(traps.STI, supervisor_timer)
        self._feed_input()

    def _feed_input(self):
        source = self.console.input
        now = self.vcpu.clocks.time.count
        if source is None or source.exhausted or now < self.next_input:
            return
        if self.uart.rx_room():
            byte = source.next_byte()
            if getattr(source, "quit_requested", False):
                raise KeyboardInterrupt
            if byte is not None:
                self.uart.receive(bytes([byte]))
        self.next_input = later(now, INPUT_BYTE_INSTRUCTIONS)

    def _wait_for_key(self):
        byte = self.console.input.next_byte(wait=True)
        if self.console.input.quit_requested:
            raise KeyboardInterrupt
        if byte is not None:
            self.uart.receive(bytes([byte]))

    def _timer_deadline(self):
        """The virtual time the next timer (mtimecmp or Sstc's stimecmp) comes
        due, or None: due already, or never (past the end of virtual time,
        see cpu/clock.py)."""
        now = self.vcpu.clocks.time.count
        ticks = self._ticks_until_timer()
        if not ticks:
            return None
        deadline = later(now, HOST_CLOCK_POLL if self.host_clock
                         else ticks * INSTRUCTIONS_PER_TICK)
        return None if deadline == UNLIMITED else deadline

    def _next_deadline(self, waking=False):
        """The virtual time of the next event, or None if nothing is coming.

        waking: only events that can wake a halted hart.  Input the UART has
        no room for waits until the guest reads, which a halted guest never
        does (skipping from one input deadline to the next would never end)."""
        now = self.vcpu.clocks.time.count
        deadlines = [self._timer_deadline()]
        source = self.console.input
        if source is not None and not source.exhausted and (self.uart.rx_room() or not waking):
            deadlines.append(max(self.next_input, later(now, 1)))
        return min((deadline for deadline in deadlines
                    if deadline is not None and deadline != UNLIMITED), default=None)

    def _ticks_until_timer(self):
        """Ticks until the next timer comes due: the CLINT's (mtimecmp) or
        Sstc's (stimecmp), whichever first; None if neither will.  A timer
        that is due already is no deadline: its interrupt is pending (taken
        if enabled), and it must not hide the other timer's deadline."""
        waits = [ticks for ticks in (self.clint.ticks_until_timer(), self.csrs.ticks_until_timer())
                 if ticks]
        return min(waits, default=None)

    def _arm_time(self):
        """Attach the time counter once time matters, and set its next stop.

        It stays attached from then on: attaching or detaching a hook makes
        Unicorn retranslate all guest code, which costs far more than the
        block hook itself.  The timer interrupt pending from power-on
        (mtimecmp 0) does not attach it by itself: until the guest touches
        the CLINT it runs free, and a guest that enables MTIE without ever
        arming the timer takes that interrupt at its next exit."""
        time = self.vcpu.clocks.time
        deadline = self._next_deadline()
        self.vcpu.watch_interrupt_window()
        lines = self.vcpu.machine_lines
        if not self.uses_time:
            lines &= ~(1 << traps.MTI)
        if deadline is None and not self.uses_time and not lines and not time.attached:
            return
        time.set_limit(deadline)
        time.attach()

    # -- ending a run ---------------------------------------------------------------

    def where(self, pc):
        """pc with its symbol, for messages: 0x80000068 <puts+0x1c>."""
        symbol = self.program.symbols.lookup(pc)
        return f"0x{pc:x} <{symbol}>" if symbol else f"0x{pc:x}"

    def instruction_text(self, pc):
        """The instruction at pc, disassembled (capstone)."""
        from minivm.trace import Disassembler
        try:
            bits = self.vcpu.instruction_at(pc)
        except Exception:
            return "??"
        length = 2 if bits & 3 != 3 else 4
        return Disassembler(self.vcpu.xlen).instruction(
            lambda address, size: bits.to_bytes(4, "little")[:length], pc)

    def break_on(self, specs):
        """--break-on: pdb inside the named devices' models (minivm/pdbbreak.py)."""
        from minivm.pdbbreak import Breaker
        Breaker(self, specs)

    def _end(self, exit, exit_code, message):
        self._trace_exit(exit, message)
        if self.debugger is not None:
            self.debugger.finished(exit_code)
        self.sync()
        clean = exit.reason is ExitReason.FINISH
        counter = self.vcpu.clocks.instructions
        return RunResult(
            exit_code=exit_code,
            reason=exit.reason,
            output=bytes(self.console.captured),
            instructions=counter.count if counter.attached else None,
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
            report[name] = {"traps": device.trap_count(), "bytes": device.payload_bytes,
                            "registers": registers}
            if isinstance(device, VirtioMmio) and device.backend is not None:
                report[name].update(requests=device.requests, notifies=device.notifies)
        for number, window in enumerate(self.windows):
            # Passthrough costs no trap: the host never sees the accesses.
            report[f"passthrough{number}"] = {"traps": 0, "bytes": None, "registers": {},
                                             "kind": "passthrough"}
        return report

    def input_files(self):
        """Every host file this machine reads: firmware, disk images, passthrough files."""
        images = [self.disk_image] if self.disk_image is not None else []
        images += [image for image, _ in self.virtio_disks]
        return ([self.program.path] + [image.path for image in images]
                + [window.path for window in self.windows])

    def sync(self):
        """Push the guest's stores in read-write passthrough windows to their files."""
        for window in self.windows:
            window.sync()

    def memory_map(self):
        """(name, base, size, irq) for every region of this machine, by address."""
        return [(r.name, r.base, r.size, r.irq) for r in self.bus.regions]


def print_stats(result, stream=None):
    from minivm.fastpath import describe
    stream = stream or sys.stderr
    counted = (f"{result.instructions} instructions" if result.instructions is not None
               else "instructions not counted (free-running)")
    print(f"minivm stats: {counted}; {describe()}", file=stream)
    print(f"  {'device':<10} {'traps':>9} {'bytes':>11} {'traps/KiB':>10}  registers",
          file=stream)
    for name, numbers in result.stats.items():
        traps, payload = numbers["traps"], numbers["bytes"]
        if numbers.get("kind") == "passthrough":
            print(f"  {name:<10} {0:>9} {'-':>11} {'0':>10}  (mapped: loads and stores "
                  f"reach the file with no trap, so the host cannot count them)", file=stream)
            continue
        if not traps:
            continue
        per_kib = f"{traps * 1024 / payload:.1f}" if payload else "-"
        registers = ", ".join(f"{key} {count}" for key, count in numbers["registers"].items())
        if "requests" in numbers:
            registers = (f"{numbers['requests']} requests in {numbers['notifies']} notifies; "
                         + registers)
        print(f"  {name:<10} {traps:>9} {payload:>11} {per_kib:>10}  {registers}", file=stream)
