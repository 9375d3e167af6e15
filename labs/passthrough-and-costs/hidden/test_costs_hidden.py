"""Hidden tests of the passthrough-and-costs lab (graded, not shipped to students)."""
import math
import os
import pathlib
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))

from costs_rig import (WINDOW, answers, data, numbers_in, padded,  # noqa: E402
                       reference_run, student_run)

from minivm.grading import labkit  # noqa: E402


def test_traps_per_kib():
    """traps_per_kib: the ratio, 0 without traps, infinity with traps and no payload."""
    costs = labkit.load("costs.py")
    assert math.isclose(costs.traps_per_kib(16924, 67072), 16924 * 1024 / 67072), \
        "traps_per_kib(16924, 67072) is wrong"
    assert costs.traps_per_kib(0, None) == 0, "traps_per_kib(0, None) must be 0"
    assert costs.traps_per_kib(0, 4096) == 0, "traps_per_kib(0, 4096) must be 0"
    assert costs.traps_per_kib(3, 0) == math.inf, "traps_per_kib(3, 0) must be infinity"


def window_run(mode):
    """The passthrough firmware on a window mapped with the student's option."""
    from minivm.machine import Machine
    costs = labkit.load("costs.py")
    path = pathlib.Path(labkit.judge_folder(), f"window-{mode}.bin")   # never the student's
    content = padded(data(3), 4096)
    path.write_bytes(content)
    option = costs.passthrough_option(str(path), WINDOW, mode)
    assert isinstance(option, str), f"passthrough_option returned {option!r}"
    result = Machine(labkit.firmware("passthrough"), max_insns=labkit.max_insns(),
                     passthrough=[option]).run()
    return result, content, path.read_bytes()


def test_read_only_window_faults():
    """Mapped ,ro: the guest's store is a store access fault (exit 3), the file unchanged."""
    result, before, after = window_run("ro")
    assert result.exit_code == 3 and b"store access fault" in result.output, (
        f"with a read-only window the guest exited {result.exit_code} printing:\n"
        f"{result.output.decode(errors='replace')}")
    assert before == after, "a read-only window's file changed"


def test_private_window_keeps_file():
    """Mapped ,private: the guest writes its own copy; the file is unchanged."""
    result, before, after = window_run("private")
    assert result.exit_code == 0, f"with a private window the guest exited {result.exit_code}"
    assert before == after, "a private window's file changed"


def test_shared_window_reaches_file():
    """Mapped read-write: the guest's stores reach the file."""
    result, before, after = window_run("rw")
    assert result.exit_code == 0, f"with a read-write window the guest exited {result.exit_code}"
    pattern = b"".join((0xD15C0000 | i).to_bytes(4, "little") for i in range(128))
    assert after[65536 - 512:65536] == pattern, "the guest's stores did not reach the file"


def test_costs_ranked(tmp_path):
    """Emulated costs more traps per KiB than paravirtualized, which costs more than passthrough."""
    payload = data(5, 96 * 1024)
    costs = {model: student_run(model, payload, tmp_path / model)["traps_per_kib"]
             for model in ("emulated", "paravirtualized", "passthrough")}
    assert costs["emulated"] > 100 * costs["paravirtualized"] > 0, f"measured {costs}"
    assert costs["passthrough"] == 0, f"measured {costs}"


def test_run_model_other_data(tmp_path):
    """run_model really runs on the data it is given (128 KiB, other bytes)."""
    payload = data(9, 128 * 1024)
    for model in ("emulated", "passthrough"):
        mine = student_run(model, payload, tmp_path / f"student-{model}")
        reference, _ = reference_run(model, payload, labkit.judge_folder())
        assert mine["output"] == reference.output.decode(), (
            f"{model} on other data printed:\n{mine['output']}\nexpected:\n"
            f"{reference.output.decode()}")


def test_answers_quote_numbers():
    """ANSWERS.md quotes the traps per KiB measured for the PIO disk and for virtio."""
    text = answers()
    numbers = numbers_in(text)
    payload = data()
    for model, tolerance in [("emulated", 0.02), ("paravirtualized", 0.1)]:
        _, counted = reference_run(model, payload, labkit.judge_folder())
        expected = counted["traps"] * 1024 / counted["bytes"]
        assert any(abs(number - expected) <= tolerance * expected for number in numbers), (
            f"ANSWERS.md quotes no traps-per-KiB figure for the {model} model "
            f"(measured: {expected:.2f})")
