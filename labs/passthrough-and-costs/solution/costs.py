"""What each device model costs: the same bytes through three devices.

minivm's three demo firmwares do the same job -- checksum the first 64 KiB
of a disk, write the last sector, read it back -- each through one model:

    emulated         pio_disk      the PIO disk at 0x1020_0000: a trap per 4 bytes
    paravirtualized  virtio_blk    virtio-blk: requests in a ring, one notify per batch
    passthrough      passthrough   a host file mapped at 0x4000_0000: no trap at all

You run each one on a real minivm machine (minivm.machine.Machine, in this
process) with the data you are given, and count what the host paid:
RunResult.stats[DEVICE] = {"traps": ..., "bytes": payload bytes, ...}.
"""
import os

from minivm.cli import firmware_path
from minivm.machine import Machine

WINDOW = 0x4000_0000          # where the passthrough firmware expects its file
PAGE = 4096                   # mmap maps whole pages: a window is a multiple of this
SECTOR = 512                  # a disk image is a multiple of this
FIRMWARE = {"emulated": "pio_disk", "paravirtualized": "virtio_blk",
            "passthrough": "passthrough"}
DEVICE = {"emulated": "piodisk", "paravirtualized": "virtio0", "passthrough": "passthrough0"}


def make_file(path, data, multiple=PAGE):
    """Write `data` to `path`, padded with zero bytes up to a multiple of
    `multiple` (at least one `multiple`).  Returns the file's size."""
    size = max(multiple, -(-len(data) // multiple) * multiple)
    with open(path, "wb") as stream:
        stream.write(bytes(data).ljust(size, b"\0"))
    return size


def passthrough_option(path, address=WINDOW, mode="rw"):
    """The option that maps `path` at `address`, as `minivm run --passthrough`
    and Machine(passthrough=[...]) take it: PATH@ADDR (hex) [,ro | ,private]."""
    option = f"{path}@0x{address:x}"
    return option if mode == "rw" else f"{option},{mode}"


def traps_per_kib(traps, payload_bytes):
    """Traps per KiB of payload: 0.0 with no trap, infinity with traps but no payload."""
    if not traps:
        return 0.0
    if not payload_bytes:
        return float("inf")
    return traps * 1024 / payload_bytes


def run_model(model, data, folder):
    """Run `model`'s firmware with `data` as its disk (or mapped file), in `folder`.

    Returns {"exit_code": int, "output": str (what the guest printed),
    "traps": traps the model's device took, "bytes": its payload bytes (None
    for passthrough: the host never sees them), "traps_per_kib": float}."""
    if model == "passthrough":
        path = os.path.join(folder, "window.bin")
        make_file(path, data, PAGE)
        devices = {"passthrough": [passthrough_option(path)]}
    else:
        path = os.path.join(folder, "disk.img")
        make_file(path, data, SECTOR)
        devices = {"disk": path} if model == "emulated" else {"virtio_blk": [path]}
    result = Machine(firmware_path(FIRMWARE[model]), **devices).run()
    numbers = result.stats[DEVICE[model]]
    return {"exit_code": result.exit_code, "output": result.output.decode(errors="replace"),
            "traps": numbers["traps"], "bytes": numbers["bytes"],
            "traps_per_kib": traps_per_kib(numbers["traps"], numbers["bytes"])}
