"""Hidden tests of the trap-and-emulate lab (graded, not shipped to students)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))

from hashdev_rig import WINDOW_BASE, expect_check, run_firmware  # noqa: E402

from minivm.grading import labkit  # noqa: E402

FNV_BASIS = 2166136261


def test_hash_bytes_and_halves():
    """Byte and halfword DATA writes hash exactly the bytes written."""
    expect_check("bytes")


def test_reset():
    """CONTROL=1 brings RESULT back to the FNV basis and COUNT to 0."""
    expect_check("reset")


def test_control_ignores_other_values():
    """CONTROL writes other than 1 leave the hash alone."""
    expect_check("control")


def test_two_devices():
    """hash0 and hash1 are separate devices, each at its own page."""
    expect_check("two-devices")


def test_empty_pages_and_unknown_offsets():
    """Empty pages and unknown offsets read 0; write-only registers read 0; writes to
    read-only registers are ignored."""
    expect_check("empty")


def test_route():
    """Board.route maps every address of the window, and nothing else."""
    board = labkit.load("hashdev.py").Board()
    cases = {WINDOW_BASE: ("hash0", 0), WINDOW_BASE + 0x18: ("hash0", 0x18),
             WINDOW_BASE + 0xFFF: ("hash0", 0xFFF), WINDOW_BASE + 0x1000: None,
             WINDOW_BASE + 0x1FFF: None, WINDOW_BASE + 0x2000: ("hash1", 0),
             WINDOW_BASE + 0x2010: ("hash1", 0x10), WINDOW_BASE + 0x2FFF: ("hash1", 0xFFF),
             WINDOW_BASE + 0x3000: None, WINDOW_BASE + 0x4000: None, WINDOW_BASE - 4: None}
    for address, expected in cases.items():
        got = board.route(address)
        got = tuple(got) if isinstance(got, (list, tuple)) else got
        assert got == expected, f"route(0x{address:x}) is {got!r}, expected {expected!r}"


def test_power_on_state_and_access_sizes():
    """A new device: RESULT is the FNV basis, COUNT and SCRATCH 0; a 1-byte DATA write
    hashes one byte even if the value has more bits set."""
    device = labkit.load("hashdev.py").HashDevice()
    assert device.read(0x10, 4) == FNV_BASIS, "RESULT at power-on is not the FNV basis"
    assert device.read(0x14, 4) == 0, "COUNT at power-on is not 0"
    assert device.read(0x18, 4) == 0, "SCRATCH at power-on is not 0"
    device.write(0x0C, 1, 0x1234)
    expected = ((FNV_BASIS ^ 0x34) * 16777619) & 0xFFFFFFFF
    assert device.read(0x10, 4) == expected, "a 1-byte DATA write of 0x1234 must hash 0x34 only"
    assert device.read(0x14, 4) == 1, "COUNT after one 1-byte DATA write is not 1"


def test_stats_name_registers():
    """--stats counts the exits of both devices under their register names."""
    result, _ = run_firmware()
    assert result is not None, "the guest did not finish: see the other tests"
    registers = result.stats["hashdev"]["registers"]
    for key in ("hash0.DATA write", "hash0.CONTROL write", "hash1.RESULT read",
                "hash1.SCRATCH write", "hash1.COUNT read"):
        assert registers.get(key, 0) > 0, (f"--stats shows no '{key}' exits "
                                           f"(it shows: {', '.join(sorted(registers))[:300]})")
