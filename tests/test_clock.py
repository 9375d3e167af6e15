"""Virtual time saturates: it never wraps, never goes backwards, and a
deadline past its end means "never" (minivm/cpu/clock.py).

Run on both counter twins: the Cython one (minivm._fastpath.Counter) and
the pure-Python one (MINIVM_PURE=1), each on the real Unicorn CPU with real
firmware; the firmware's output is compared with QEMU's (tests/golden/).
"""
import pytest

import oracle
from conftest import firmware, minivm
from minivm import fastpath as choice
from minivm.cpu.clock import END_OF_TIME, UNLIMITED, later
from minivm.devices.clint import INSTRUCTIONS_PER_TICK
from minivm.machine import Machine

TWINS = pytest.mark.parametrize("pure", [False, True], ids=["cython", "pure"])


@pytest.fixture
def twin(monkeypatch, pure):
    """Make Machines built in this test use one counter twin."""
    if pure:
        monkeypatch.setattr(choice, "_module", None)
    elif choice.fastpath() is None:
        pytest.skip("the Cython extension is not built")
    return pure


def env(pure):
    import os
    return dict(os.environ, MINIVM_PURE="1" if pure else "0")


def test_later_saturates_at_never():
    assert later(10, 5) == 15
    assert later(END_OF_TIME, 1) == UNLIMITED
    assert later(END_OF_TIME - 5, 1 << 70) == UNLIMITED


@TWINS
def test_virtual_time_stops_at_the_end_and_never_wraps(twin):
    # bench_timer's 1 kHz tick, started a few instructions before the end
    # of time: the count must stop at END_OF_TIME (a 64-bit count would wrap
    # to a small number), mtime with it, and the run end at its budget.
    machine = Machine(firmware("bench_timer"), max_insns=200_000)
    time = machine.vcpu.clocks.time
    time.count = END_OF_TIME - 1000
    mtime_before = machine.clint.mtime
    result = machine.run()
    assert result.exit_code == 124, result.message       # --max-insns ended it
    assert time.count == END_OF_TIME
    assert machine.clint.mtime == END_OF_TIME // INSTRUCTIONS_PER_TICK >= mtime_before


@TWINS
def test_setting_time_past_the_end_saturates(twin):
    machine = Machine(firmware("bench_timer"))
    time = machine.vcpu.clocks.time
    time.count = 1 << 80
    assert time.count == END_OF_TIME
    time.set_limit(1 << 80)
    assert time.limit == UNLIMITED


@TWINS
@pytest.mark.parametrize("image", ["clint_halves-rv32", "timer_far"])
def test_far_timer_deadlines_never_come_stdin_not_a_terminal(twin, image):
    # clint_halves: an RV32 kernel's two 32-bit mtimecmp stores, the first of
    # which leaves a deadline thousands of years away; timer_far: deadlines
    # from 1.8e17 ticks to all ones.  From a script (stdin /dev/null) no
    # other deadline is pending.
    done = minivm("run", firmware(image), env=env(twin))
    expected_output, expected_status = oracle.golden(firmware(image))
    assert done.stdout == expected_output
    assert b"Traceback" not in done.stderr
    if expected_status == "runaway":       # QEMU waits forever; minivm says why
        assert done.returncode == 125
        assert done.stderr.startswith(b"minivm: guest halted (wfi) with nothing that could wake")
    else:
        assert done.returncode == expected_status


@TWINS
@pytest.mark.parametrize("image", ["timer_far", "hang"])
def test_max_insns_ends_a_halted_guest_with_input_waiting(twin, image):
    # Input the guest never reads, and a timer that never comes: the halted
    # hart can never wake, so the run ends (it used to skip from one input
    # deadline to the next for ever, which --max-insns could not stop).
    done = minivm("run", firmware(image), "--max-insns", "10000000000",
                  input=b"typed but never read\n", env=env(twin))
    assert done.returncode == 125, done.stderr
    assert done.stderr.startswith(b"minivm: guest halted (wfi) with nothing that could wake")
