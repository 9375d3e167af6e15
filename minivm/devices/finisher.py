"""The SiFive test device ("finisher") at 0x10_0000, as on QEMU `virt`.

One 32-bit register.  The low 16 bits say what to do, the high 16 bits
carry an exit code for FAIL:
    0x5555               pass: the run ends with exit status 0
    (code << 16)|0x3333  fail: the run ends with exit status `code`
    0x7777               reset the machine
Anything else is ignored, as QEMU does.

A process exit status has 8 bits, so QEMU's exit(code) turns a FAIL with
code 256 (or 0, 512, ...) into status 0: a failing test that looks passed.
minivm makes such a FAIL status 1 instead; other codes are as on QEMU.

The device does not end the process itself: it tells the board, which
decides what ending the run means (devices never control the process).
"""
from minivm.devices.device import Device

# -- register -------------------------------------------------------------------
FINISHER = 0x0           # the only register (write-only)

# -- commands (low 16 bits) ---------------------------------------------------------
FINISHER_FAIL = 0x3333
FINISHER_PASS = 0x5555
FINISHER_RESET = 0x7777


def fail_status(code):
    """The exit status of a FAIL with this code: never 0, which means PASS."""
    return code if code % 256 else 1


class Finisher(Device):
    REGISTERS = {FINISHER: "FINISHER"}

    def __init__(self, on_finish=None, on_reset=None):
        """on_finish(status) ends the run; on_reset() restarts the machine."""
        super().__init__()
        self.on_finish = on_finish or (lambda status: None)
        self.on_reset = on_reset or (lambda: None)

    def write(self, offset, size, value):
        if offset != FINISHER:
            return
        command, code = value & 0xFFFF, (value >> 16) & 0xFFFF
        if command == FINISHER_PASS:
            self.on_finish(0)
        elif command == FINISHER_FAIL:
            self.on_finish(fail_status(code))
        elif command == FINISHER_RESET:
            self.on_reset()

    def describe(self, offset, value, is_write):
        command, code = value & 0xFFFF, (value >> 16) & 0xFFFF
        return {FINISHER_PASS: "PASS", FINISHER_FAIL: f"FAIL code {code}",
                FINISHER_RESET: "RESET"}.get(command, "ignored")
