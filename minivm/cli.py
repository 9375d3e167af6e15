"""The command line: a thin layer over minivm.machine.Machine.

    minivm run [FIRMWARE] [--memory 128M] [--trace] [--stats] [--max-insns N] ...
    minivm info [FIRMWARE]
    minivm grade LAB --submission DIR | --batch DIR | --export-gradescope ZIP
    minivm lab list | handout LAB OUT

Errors the user can fix end with one line on stderr and exit status 2.
"""
import argparse
import sys

from minivm.errors import MinivmError

DEFAULT_FIRMWARE = "hello"


def firmware_path(name):
    """A path as given, or the name of a built-in image (hello -> hello.elf)."""
    import os
    if os.path.sep in name or os.path.exists(name):
        return name
    from minivm.datafiles import data_folders
    image = name if name.endswith(".elf") else f"{name}.elf"
    for folder in data_folders("firmware"):
        candidate = os.path.join(folder, image)
        if os.path.isfile(candidate):
            return candidate
    return name


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (and where to look), not a usage block."""

    def error(self, message):
        command = self.prog.removeprefix("minivm").strip()     # "run", or "" at the top
        where = f"{command}: " if command else ""
        self.exit(2, f"minivm: {where}{message} (see {self.prog} --help)\n")


def build_parser(argv=()):
    parser = ArgumentParser(
        prog="minivm",
        description="An educational RISC-V machine emulator (QEMU virt compatible).")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a firmware image")
    run.add_argument("firmware", nargs="?", default=DEFAULT_FIRMWARE,
                     help="ELF file, or the name of a built-in image (default: hello)")
    run.add_argument("--memory", "-m", default="128M", help="RAM size, e.g. 128M or 1G")
    run.add_argument("--max-insns", type=_instruction_count, metavar="N",
                     help="stop the guest after N instructions (exit status 124)")
    run.add_argument("--trace", nargs="?", const="all", metavar="LIST",
                     help="print one line per VM exit (to stderr, or --trace-file); "
                          "--trace=mmio,traps,irq,virtio,exits keeps only those")
    run.add_argument("--trace-file", metavar="PATH", help="write the trace to PATH")
    run.add_argument("--stats", action="store_true",
                     help="print traps per device and per register at exit")
    run.add_argument("--disk", metavar="IMAGE[,ro]",
                     help="a raw disk image (size a multiple of 512) for the PIO disk; "
                          ",ro opens it read-only; write a comma in IMAGE as ,,")
    run.add_argument("--virtio-blk", action="append", default=[], metavar="IMAGE[,ro][,legacy]",
                     help="a raw disk image behind a virtio-mmio block device (modern; "
                          ",legacy for the version 1 interface); repeatable, slot 0 first")
    run.add_argument("--passthrough", action="append", default=[],
                     metavar="PATH@ADDR[,ro|,private]",
                     help="map a host file (size a multiple of 4 KiB) into guest memory "
                          "at ADDR (hex); repeatable")
    run.add_argument("--break-on", action="append", default=[], metavar="DEVICE[.REGISTER]",
                     help="drop into pdb inside the device model when the guest touches "
                          "it, e.g. uart0.THR or virtio0.QueueNotify (stdin goes to pdb)")
    run.add_argument("--gdb", type=_port, metavar="PORT",
                     help="serve gdb's remote protocol on localhost:PORT "
                          "(gdb-multiarch FW.elf -ex 'target remote :PORT')")
    run.add_argument("--gdb-wait", action="store_true",
                     help="with --gdb: wait for gdb before running the first instruction")
    run.add_argument("--clock", choices=("virtual", "host"), default="virtual",
                     help="virtual (default): time counts guest instructions, every run "
                          "the same; host: time follows the wall clock, runs differ")
    run.add_argument("--input", metavar="FILE",
                     help="bytes to type into the UART (default: stdin; in a "
                          "terminal, keys as you type them, Ctrl-A X quits)")
    run.add_argument("--input-after", metavar="TEXT",
                     help="with --input: type the file only once the guest has printed TEXT")
    run.add_argument("--expect", action=ScriptOption, dest="script", metavar="TEXT",
                     help="a script instead of --input: wait until the guest prints TEXT, "
                          "then type the next --send; a last --expect ends the run "
                          "(status 0) when TEXT appears")
    run.add_argument("--send", action=ScriptOption, dest="script", metavar="KEYS",
                     help="keys to type once the --expect before it matched "
                          "(escapes: \\n \\r \\t \\xNN)")

    grade = commands.add_parser("grade", help="grade lab submissions (Gradescope results.json)")
    if list(argv)[:1] == ["grade"]:
        # Only a grading run pays for importing the grader (start-up time counts).
        from minivm.grading.cli import add_arguments
        add_arguments(grade)

    lab = commands.add_parser("lab", help="the labs: list them, write a student handout")
    if list(argv)[:1] == ["lab"]:
        from minivm.grading.handout import add_arguments
        add_arguments(lab)

    info = commands.add_parser("info", help="show the machine: memory map, versions")
    info.add_argument("firmware", nargs="?", default=DEFAULT_FIRMWARE)
    info.add_argument("--memory", "-m", default="128M")
    info.add_argument("--disk", metavar="IMAGE[,ro]")
    info.add_argument("--passthrough", action="append", default=[],
                      metavar="PATH@ADDR[,ro|,private]")
    info.add_argument("--virtio-blk", action="append", default=[], metavar="IMAGE[,ro][,legacy]")
    return parser


# --input-after holds the file's bytes until the guest prints its marker.
SCRIPT_INPUT_LIMIT = 16 << 20


class ScriptOption(argparse.Action):
    """--expect and --send: kept together, in command-line order."""

    def __call__(self, parser, namespace, value, option_string=None):
        steps = getattr(namespace, self.dest) or []
        setattr(namespace, self.dest, steps + [(option_string, value)])


def script_from(args):
    """The Expect script that --expect/--send or --input-after ask for, or None."""
    if not args.script and args.input_after is None:
        return None
    from minivm.console import input_from
    from minivm.expect import Expect, steps_from_options
    if args.script and (args.input is not None or args.input_after is not None):
        raise MinivmError("--expect/--send replace --input and --input-after: use one or the other")
    if args.script:
        return Expect(steps_from_options(args.script))
    if args.input is None:
        raise MinivmError("--input-after needs --input FILE")
    keys = input_from(args.input).read_all(SCRIPT_INPUT_LIMIT)
    if keys is None:
        raise MinivmError(f"{args.input}: more than {SCRIPT_INPUT_LIMIT >> 20} MiB to type "
                          f"after --input-after")
    return Expect([(args.input_after, keys)])


def _number(text, low, high):
    """An integer (decimal, or 0x.. hex) from low to high."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text!r} is not from {low} to {high}")
    return value


def _instruction_count(text):
    return _number(text, 1, (1 << 64) - 1)     # the instruction counter has 64 bits


def _port(text):
    return _number(text, 1, 65535)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "gdb_wait", False) and not args.gdb:
        parser.exit(2, "minivm: run: --gdb-wait needs --gdb PORT (see minivm run --help)\n")
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "grade":
            from minivm.grading.cli import run
            return run(args)
        if args.command == "lab":
            from minivm.grading.handout import run
            return run(args)
        return command_info(args)
    except MinivmError as error:
        print(f"minivm: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # Ctrl-C outside the guest (loading, printing)
        print("minivm: interrupted", file=sys.stderr)
        return 130


def command_run(args):
    import io

    from minivm.console import input_from
    from minivm.machine import Machine, print_stats

    if sys.stdout is None:
        raise MinivmError("standard output is closed: the guest's output has nowhere to go")
    if args.trace_file and not args.trace:
        args.trace = "all"
    # Nothing is created or truncated before every input has been checked:
    # the trace's first lines wait in memory until the trace file is opened.
    trace = io.StringIO() if args.trace_file else sys.stderr if args.trace else None
    # With --break-on, stdin is pdb's: the UART reads --input only.
    source = script_from(args) or input_from(args.input, None if args.break_on else sys.stdin)
    machine = Machine(firmware_path(args.firmware), memory=args.memory,
                      max_insns=args.max_insns, trace=trace, trace_only=args.trace,
                      stdout=sys.stdout.buffer,
                      input=source, clock=args.clock, disk=args.disk,
                      passthrough=args.passthrough, virtio_blk=args.virtio_blk)
    if args.break_on:
        machine.break_on(args.break_on)
    debugger = None
    if args.gdb:
        try:
            debugger = machine.attach_debugger(args.gdb)
        except OSError as error:
            raise MinivmError(f"gdb port {args.gdb}: {error.strerror}")
    if args.trace_file:
        inputs = machine.input_files() + ([args.input] if args.input else [])
        trace = OutputFile(args.trace_file, inputs, first_lines=trace.getvalue())
        machine.tracer.out = trace
    if debugger is not None:
        print(f"minivm: gdb server on localhost:{args.gdb}"
              + (", waiting for gdb" if args.gdb_wait else ""), file=sys.stderr, flush=True)
        debugger.start(args.gdb_wait)
    signals = stop_on_signals(machine.vcpu)
    result = None
    try:
        with signals, terminal_mode(source):
            result = machine.run()
    except KeyboardInterrupt:
        pass                  # a signal outside the guest: ended below, as in the guest
    finally:
        machine.sync()        # stores in passthrough windows reach their files, whatever happened
        if isinstance(trace, OutputFile):
            trace.close()
    write_stdout()
    if signals.received is not None:
        print(f"minivm: stopped by {signals.received.name}", file=sys.stderr)
        return 128 + signals.received
    if result is None:
        raise KeyboardInterrupt
    if result.message:
        print(f"minivm: {result.message}", file=sys.stderr)
    if args.stats:
        print_stats(result)
    return result.exit_code


def write_stdout(text=""):
    """Write text to stdout and flush it; a failure (a full disk) is one line.
    What could not be written is dropped, so the interpreter's own flush at
    exit stays quiet."""
    import os
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as error:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        raise MinivmError(f"standard output: {error.strerror}") from None


class OutputFile:
    """A file minivm writes (the trace).  It may not be one of the run's
    inputs (tracing into the firmware would destroy it), and a failed write
    (a full disk) ends the run with one line."""

    def __init__(self, path, inputs, first_lines=""):
        import os
        self.path = path
        try:
            target = os.stat(path)
        except OSError:
            target = None                      # a new file: it cannot be an input
        for name in inputs:
            try:
                same = target is not None and os.path.samestat(os.stat(name), target)
            except OSError:
                same = False
            if same:
                raise MinivmError(f"--trace-file {path}: that is {name}, an input of "
                                  f"this run; not overwriting it")
        self.stream = self._do(self._open, path)
        self.write(first_lines)

    @staticmethod
    def _open(path):
        import errno
        import fcntl
        import os
        # Non-blocking, so that a FIFO nobody reads is refused (ENXIO) rather
        # than waited on forever; then blocking again, so writes wait for a
        # slow reader instead of failing.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, 0o666)
        except OSError as error:
            if error.errno == errno.ENXIO:
                error.strerror = "a FIFO with no reader"
            raise
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return open(fd, "w")

    def _do(self, operation, *args):
        try:
            return operation(*args)
        except OSError as error:
            raise MinivmError(f"{self.path}: {error.strerror}") from None

    def write(self, text):
        self._do(self.stream.write, text)

    def flush(self):
        self._do(self.stream.flush)

    def close(self):
        self._do(self.stream.close)


def command_info(args):
    import capstone
    import unicorn

    from minivm.fastpath import describe
    from minivm.machine import Machine

    machine = Machine(firmware_path(args.firmware), memory=args.memory, disk=args.disk,
                      passthrough=args.passthrough, virtio_blk=args.virtio_blk)
    lines = [f"minivm: RV{machine.vcpu.xlen} machine, QEMU virt memory map",
             f"  {'region':<13} {'base':>12} {'size':>12}  irq"]
    for name, base, size, irq in machine.memory_map():
        lines.append(f"  {name:<13} 0x{base:010x} 0x{size:010x}  {'-' if irq is None else irq}")
    lines.append(f"unicorn {unicorn.__version__}, capstone {capstone.__version__}")
    lines.append(f"virtqueue and instruction clock: {describe()}")
    if sys.stdout is not None:
        write_stdout("\n".join(lines) + "\n")
    return 0


def terminal_mode(source):
    """Raw keys while the guest runs, when the input is a terminal."""
    import contextlib
    return source if getattr(source, "interactive", False) else contextlib.nullcontext()


class stop_on_signals:
    """Make Ctrl-C, SIGTERM and SIGHUP stop the guest even while it runs
    inside Unicorn, so the run ends cleanly (passthrough windows synced).

    Python runs signal handlers only between bytecodes, and a guest in a
    tight loop never returns to Python.  Python's C-level handler does
    write the signal number to a wakeup fd at once, so a helper thread
    waits on that fd and stops the vCPU; run() then returns INTERRUPTED.
    SIGTERM and SIGHUP are then handled like Ctrl-C (a KeyboardInterrupt,
    which also ends a wait for input); `received` says which one came.
    """

    STOPPING = ("SIGTERM", "SIGHUP")

    def __init__(self, vcpu):
        self.vcpu = vcpu
        self.received = None
        self.active = False

    def __enter__(self):
        import os
        import signal
        import threading
        if threading.current_thread() is not threading.main_thread():
            return self
        self.active = True
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)
        self.previous = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        self.handlers = {number: signal.signal(number, self._on_signal)
                         for number in map(signal.Signals.__getitem__, self.STOPPING)}
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _on_signal(self, number, frame):
        import signal
        self.received = signal.Signals(number)
        raise KeyboardInterrupt

    def _watch(self):
        import os
        while True:
            data = os.read(self.read_fd, 64)
            if not data:          # pipe closed: the run is over
                return
            self.vcpu.stop()

    def __exit__(self, *exc):
        import os
        import signal
        if self.active:
            for number, handler in self.handlers.items():
                signal.signal(number, handler)
            signal.set_wakeup_fd(self.previous)
            os.close(self.write_fd)
            self.thread.join()
            os.close(self.read_fd)
        return False


if __name__ == "__main__":
    sys.exit(main())
