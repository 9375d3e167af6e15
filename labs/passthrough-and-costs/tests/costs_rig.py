"""The lab's test rig: minivm's own runs of the three demo firmwares, to
compare the student's numbers with (computed here, in the test's process)."""
import os
import random
import re

from minivm.grading import labkit

LAB = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW = 0x4000_0000
FIRMWARE = {"emulated": "pio_disk", "paravirtualized": "virtio_blk",
            "passthrough": "passthrough"}
DEVICE = {"emulated": "piodisk", "paravirtualized": "virtio0", "passthrough": "passthrough0"}


def data(seed=1, size=64 * 1024):
    return random.Random(seed).randbytes(size)


def padded(payload, multiple):
    size = max(multiple, -(-len(payload) // multiple) * multiple)
    return payload.ljust(size, b"\0")


def reference_run(model, payload, folder):
    """minivm's own run of the model on `payload`: (RunResult, device numbers)."""
    os.makedirs(folder, exist_ok=True)
    if model == "passthrough":
        path = os.path.join(folder, "reference-window.bin")
        with open(path, "wb") as stream:
            stream.write(padded(payload, 4096))
        devices = {"passthrough": [f"{path}@0x{WINDOW:x}"]}
    else:
        path = os.path.join(folder, "reference.img")
        with open(path, "wb") as stream:
            stream.write(padded(payload, 512))
        devices = {"disk": path} if model == "emulated" else {"virtio_blk": [path]}
    from minivm.machine import Machine     # (unicorn: only when a test runs a guest)
    result = Machine(labkit.firmware(FIRMWARE[model]), max_insns=labkit.max_insns(),
                     **devices).run()
    return result, result.stats[DEVICE[model]]


def student_run(model, payload, folder):
    """The student's run_model, checked for shape."""
    costs = labkit.load("costs.py")
    os.makedirs(folder, exist_ok=True)
    report = costs.run_model(model, payload, str(folder))
    assert isinstance(report, dict), f"run_model({model!r}) returned {report!r}, not a dict"
    missing = {"exit_code", "output", "traps", "bytes", "traps_per_kib"} - set(report)
    assert not missing, f"run_model({model!r}) left out {', '.join(sorted(missing))}"
    return report


def answers():
    path = os.path.join(labkit.submission_dir(), "ANSWERS.md")
    assert os.path.isfile(path), "ANSWERS.md is not in the submission"
    with open(path, encoding="utf-8", errors="replace") as stream:
        text = stream.read()
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def numbers_in(text):
    values = []
    for match in re.finditer(r"\d[\d,]*(?:\.\d+)?", text):
        try:
            values.append(float(match.group().replace(",", "")))
        except ValueError:
            pass
    return values
