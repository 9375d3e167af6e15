"""Visible tests of the trap-and-emulate lab (the hidden ones check the rest).

    pytest labs/trap-and-emulate/tests                          # starter/hashdev.py
    MINIVM_SUBMISSION=path/to/your/folder pytest labs/trap-and-emulate/tests
"""
import io
import re

from hashdev_rig import expect_check, run_firmware


def test_magic_and_version():
    """The guest reads MAGIC and VERSION of hash0."""
    expect_check("magic")


def test_scratch():
    """SCRATCH keeps what the guest wrote."""
    expect_check("scratch")


def test_hash_words():
    """Four 32-bit DATA writes hash 16 bytes; RESULT and COUNT agree with the guest."""
    expect_check("words")


def test_trace_names_registers():
    """The trace names every register of hash0 the guest touches."""
    trace = io.StringIO()
    run_firmware(trace=trace)
    # (register, direction) of each MMIO line: a register's name is one word, so a
    # name holding other names and directions names nothing else.
    seen = set()
    for line in trace.getvalue().splitlines():
        if "MMIO" in line:
            detail = line.split("MMIO", 1)[1].strip()
            match = re.match(r"hashdev\.hash0\.(\w+)\s+(read|write)\s+0x", detail)
            if match:
                seen.add(match.groups())
    for register, direction in [("MAGIC", "read"), ("VERSION", "read"), ("CONTROL", "write"),
                                ("DATA", "write"), ("RESULT", "read"), ("COUNT", "read"),
                                ("SCRATCH", "write"), ("SCRATCH", "read")]:
        assert (register, direction) in seen, (
            f"no trace line shows a {direction} of hashdev.hash0.{register}: "
            f"is {register} in REGISTERS?")
