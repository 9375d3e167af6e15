"""--break-on DEVICE[.REGISTER]: pdb inside a device model, at the guest's access.

When the guest touches the named device (or just that register), minivm
prints where the guest is (pc, symbol, the instruction) and what it asked
for, then runs the device model's read() or write() under pdb, stopped at
its first line: `step`, `next`, `p self.lsr`... as in any Python program.
With MINIVM_PURE=1 a virtio notify steps on into the pure-Python virtqueue
walker, request by request.  pdb's `c` runs on to the next such access;
`q` finishes this access and stops breaking: the guest runs on.
"""
import pdb
import sys


def parse(specs):
    """{(device, register or None)} from ["uart0.THR", "virtio0", ...]."""
    wanted = set()
    for spec in specs:
        device, _, register = spec.partition(".")
        wanted.add((device, register or None))
    return wanted


class DevicePdb(pdb.Pdb):
    """pdb whose `q` (or end of input) finishes the access, untraced, and
    stops further breaking, rather than abandoning the device model half-way."""

    quit = False

    def do_quit(self, arg):
        self.quit = True
        return self.do_continue(arg)

    do_q = do_exit = do_EOF = do_quit


# Register names are found by asking the device to name each offset of its
# window.  The PLIC's 64 MiB are too many to ask; its names follow a pattern
# (priority[N], enable1[W], claim0...) and are not checked.
PROBED_WINDOW = 0x10000
BANKS = (0, 0x80)   # the UART names DLL/DLM only with LCR.DLAB (0x80) set


def register_names(device):
    """Every name the device gives its registers, or None if not probed."""
    if device.size > PROBED_WINDOW:
        return None
    return {device.register_name(offset, is_write, bank)
            for offset in range(device.size) for is_write in (False, True) for bank in BANKS}


class Breaker:
    def __init__(self, machine, specs):
        self.machine = machine
        machine.bus.break_on = parse(specs)
        machine.bus.on_break = self.on_break
        self.names = {name for name, _ in machine.bus.break_on}
        unknown = self.names - set(machine.devices)
        if unknown:
            from minivm.errors import MinivmError
            raise MinivmError(f"--break-on: no device {', '.join(sorted(unknown))} "
                              f"(devices: {', '.join(machine.devices)})")
        for name, register in machine.bus.break_on:
            self._check_register(name, register)

    def _check_register(self, name, register):
        names = register_names(self.machine.devices[name])
        if register is None or names is None or register in names:
            return
        from minivm.errors import MinivmError
        named = sorted(n for n in names if "+0x" not in n)   # not the offsets
        raise MinivmError(f"--break-on: {name} has no register {register} "
                          f"(registers: {', '.join(named)})")

    def on_break(self, name, device, offset, size, value, is_write):
        machine = self.machine
        pc = machine.vcpu.pc
        register = device.register_name(offset, is_write)
        what = f"write 0x{value:x}" if is_write else "read"
        print(f"minivm: guest pc {machine.where(pc)}: {machine.instruction_text(pc)}\n"
              f"minivm: {name}.{register} {what}: pdb in {type(device).__name__}."
              f"{'write' if is_write else 'read'}()", file=sys.stdout, flush=True)
        debugger = DevicePdb()
        call = (device.write, offset, size, value) if is_write else (device.read, offset, size)
        result = debugger.runcall(*call)
        if debugger.quit:
            machine.bus.break_on = set()
        return result if result is not None else 0
