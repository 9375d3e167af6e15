"""Visible tests of the passthrough-and-costs lab (the hidden ones check the rest).

    pytest labs/passthrough-and-costs/tests                  # starter/costs.py
    MINIVM_SUBMISSION=path/to/your/folder pytest labs/passthrough-and-costs/tests
"""
import math
import re

from costs_rig import answers, data, reference_run, student_run

from minivm.grading import labkit


def test_make_file(tmp_path):
    """make_file pads with zeros to a whole number of pages (or sectors)."""
    costs = labkit.load("costs.py")
    for length, multiple, size in [(5000, 4096, 8192), (4096, 4096, 4096), (0, 4096, 4096),
                                   (513, 512, 1024), (70000, 512, 70144)]:
        path = tmp_path / f"file-{length}-{multiple}"
        payload = data(length, length)
        got = costs.make_file(str(path), payload, multiple)
        assert got == size, f"make_file of {length} bytes (multiple {multiple}) returned {got!r}"
        written = path.read_bytes()
        assert len(written) == size, (f"make_file of {length} bytes (multiple {multiple}) wrote "
                                      f"{len(written)} bytes, expected {size}")
        assert written == payload + bytes(size - length), "the file is not the data, zero-padded"


def test_passthrough_option():
    """passthrough_option builds PATH@ADDR[,ro|,private]."""
    costs = labkit.load("costs.py")
    for mode, suffix in [("rw", ""), ("ro", ",ro"), ("private", ",private")]:
        option = costs.passthrough_option("/tmp/w.bin", 0x40000000, mode)
        match = re.fullmatch(r"/tmp/w\.bin@(0x[0-9a-fA-F]+)((?:,\w+)?)", str(option))
        assert match and int(match.group(1), 16) == 0x40000000, (
            f"passthrough_option(..., {mode!r}) is {option!r}")
        assert match.group(2) in ((suffix, ",rw") if mode == "rw" else (suffix,)), (
            f"passthrough_option(..., {mode!r}) is {option!r}: the mode is wrong")


def check_run(model, tmp_path):
    payload = data()
    mine = student_run(model, payload, tmp_path / "student")
    reference, numbers = reference_run(model, payload, labkit.judge_folder())
    assert mine["exit_code"] == 0 and mine["output"] == reference.output.decode(), (
        f"{model}: the guest exited {mine['exit_code']!r} and printed:\n{mine['output']!r}\n"
        f"expected 0 and:\n{reference.output.decode()}")
    assert mine["traps"] == numbers["traps"], (
        f"{model}: {mine['traps']!r} traps; minivm counts {numbers['traps']}")
    assert mine["bytes"] == numbers["bytes"], (
        f"{model}: {mine['bytes']!r} payload bytes; minivm counts {numbers['bytes']}")
    expected = numbers["traps"] * 1024 / numbers["bytes"] if numbers["traps"] else 0.0
    got = mine["traps_per_kib"]
    assert isinstance(got, (int, float)) and math.isclose(got, expected, rel_tol=1e-6), (
        f"{model}: traps_per_kib {got!r}, expected {expected:.3f}")


def test_run_emulated(tmp_path):
    """run_model('emulated'): pio_disk on a disk image of the data, minivm's counts."""
    check_run("emulated", tmp_path)


def test_run_paravirtualized(tmp_path):
    """run_model('paravirtualized'): virtio_blk on a virtio disk of the data."""
    check_run("paravirtualized", tmp_path)


def test_run_passthrough(tmp_path):
    """run_model('passthrough'): the data mapped into the guest; no trap at all."""
    check_run("passthrough", tmp_path)


def test_answers_mention_each_model():
    """ANSWERS.md explains all three models (at least 80 words)."""
    text = answers()
    lower = text.lower()
    assert len(text.split()) >= 80, f"ANSWERS.md has {len(text.split())} words; write at least 80"
    for model, words in [("emulated", ("emulat", "pio")), ("paravirtualized", ("virtio", "paravirt")),
                         ("passthrough", ("passthrough", "pass-through", "mapped"))]:
        assert any(word in lower for word in words), f"ANSWERS.md does not discuss the {model} model"
