"""The lab's test rig: the student's Board on a real minivm machine.

The machine (minivm.machine.Machine) runs firmware/hashdev.elf.  One device
region covers the whole window 0x1030_0000-0x1030_3fff; every guest access
there is a VM exit that minivm's bus hands to WindowDevice below, which
passes it to the student's Board.mmio in the student's own process
(minivm.grading.labkit) and gives the guest the value that comes back.
"""
import os

from minivm.grading import labkit

LAB = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(LAB, "firmware", "hashdev.elf")
WINDOW_BASE = 0x1030_0000
WINDOW_SIZE = 0x4000
PAGE = 0x1000
PAGES = {0: "hash0", 2: "hash1"}          # the window's layout, from the lab's README


class WindowDevice(labkit.RemoteDevice):
    """The window on minivm's bus; the student's Board answers each access."""

    def __init__(self, board, registers):
        super().__init__(board, size=WINDOW_SIZE, names=self.name_of)
        self._mmio = labkit.method(board, "mmio")
        self._reset = labkit.method(board, "reset")
        self.names = registers

    def read(self, offset, size):
        value = self._mmio(WINDOW_BASE + offset, size, False, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise AssertionError(f"Board.mmio(0x{WINDOW_BASE + offset:x}, {size}, False, 0) "
                                 f"returned {value!r}: a load needs an integer")
        return value & ((1 << (8 * size)) - 1)

    def write(self, offset, size, value):
        self._mmio(WINDOW_BASE + offset, size, True, value)

    def name_of(self, offset):
        device = PAGES.get(offset // PAGE, "empty")
        register = offset % PAGE
        return f"{device}.{self.names.get(register, f'+0x{register:x}')}"


def register_names(hashdev):
    """The student's REGISTERS table, kept only if it is offset -> name."""
    table = hashdev.REGISTERS
    if not isinstance(table, dict):
        return {}
    return {offset: name for offset, name in table.items()
            if isinstance(offset, int) and isinstance(name, str)}


def run_firmware(trace=None):
    """Run hashdev.elf against the student's Board: (RunResult, output text).
    If the student's code fails while the guest runs, the run stops there:
    the RunResult is None and `output` is what the guest printed until then."""
    hashdev = labkit.load("hashdev.py")
    board = hashdev.Board()
    from minivm.machine import Machine     # (unicorn: only when a test runs a guest)
    machine = Machine(FIRMWARE, max_insns=labkit.max_insns(), trace=trace)
    labkit.attach(machine, "hashdev", WINDOW_BASE, WindowDevice(board, register_names(hashdev)))
    try:
        result = machine.run()
    except labkit.SubmissionError as error:
        Stopped.error = error
        return None, bytes(machine.console.captured).decode(errors="replace")
    return result, result.output.decode(errors="replace")


class Stopped:
    error = None        # why the last run_firmware stopped early, if it did


def expect_check(name):
    """The guest's check `name` printed "name: ok"."""
    result, output = run_firmware()
    lines = output.splitlines()
    if f"{name}: ok" in lines:
        return
    failed = [line for line in lines if line.startswith(f"{name}: ")]
    if failed:
        raise AssertionError(f"the guest says: {failed[0]}")
    if result is None:
        raise AssertionError(f"the guest never got to check {name!r}: your code failed "
                             f"while it ran:\n{Stopped.error}")
    raise AssertionError(f"the guest never reported check {name!r} "
                         f"({result.message or f'exit status {result.exit_code}'}); "
                         f"it printed:\n{output[-800:]}")
