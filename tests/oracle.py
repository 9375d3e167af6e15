"""QEMU as the conformance oracle.

Each firmware image's UART output and exit status on QEMU `virt` are kept in
tests/golden/ (NAME.out: the exact bytes, NAME.exit: the status), so the tests
can compare minivm with QEMU on any machine.  `python tests/update_golden.py`
regenerates them; test_conformance.py checks them live when QEMU is here.
"""
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
GOLDEN = Path(__file__).resolve().parent / "golden"
QEMU_TIMEOUT = 120

# Images that never finish on their own (a runaway guest): QEMU runs them
# for RUNAWAY_SECONDS, and their golden exit status is the word "runaway".
RUNAWAY = {"spin", "hang", "timer_far"}
RUNAWAY_SECONDS = 2


# Images that need a disk image or a mapped file: tested with one in their own
# test files (test_piodisk.py, test_virtio.py, test_passthrough.py), not here.
NEEDS_SETUP = {"pio_disk", "pio_bench", "virtio_blk", "virtio_bench", "virtio_irq",
               "passthrough", "passthrough_bench", "virtio_signext-rv32"}


def images():
    """Every committed firmware image."""
    return sorted(FIRMWARE.glob("*.elf"))


def qemu_images():
    """The images that run on their own, on QEMU and minivm: the ones with golden files."""
    return [image for image in images() if image.stem not in NEEDS_SETUP]


def elf_class(path):
    """32 or 64, from the ELF identification bytes."""
    return 32 if path.read_bytes()[4] == 1 else 64


def qemu_binary(path):
    return f"qemu-system-riscv{elf_class(path)}"


def have_qemu(path=None):
    return shutil.which(qemu_binary(path) if path else "qemu-system-riscv64") is not None


def golden_input(path):
    """The bytes typed into the UART for this image (tests/golden/NAME.in), or b""."""
    given = GOLDEN / f"{path.stem}.in"
    return given.read_bytes() if given.exists() else b""


def run_qemu(path):
    """(output bytes, exit status) of the image on QEMU `virt`."""
    command = [qemu_binary(path), "-M", "virt", "-m", "128M", "-bios", "none",
               "-kernel", str(path), "-nographic", "-monitor", "none"]
    if path.stem in RUNAWAY:
        try:
            subprocess.run(command, input=golden_input(path), capture_output=True,
                           timeout=RUNAWAY_SECONDS)
        except subprocess.TimeoutExpired as stopped:
            return stopped.stdout or b"", "runaway"
        raise AssertionError(f"{path.name} was expected to run forever on QEMU")
    done = subprocess.run(command, input=golden_input(path), capture_output=True,
                          timeout=QEMU_TIMEOUT)
    return done.stdout, done.returncode


def run_qemu_with_disk(path, image, legacy=False, read_only=False):
    """(output, exit status) of a virtio-blk image on QEMU with `image` as its disk.

    QEMU 7.2's virtio-mmio is legacy unless told otherwise."""
    drive = f"file={image},if=none,format=raw,id=d0" + (",readonly=on" if read_only else "")
    command = [qemu_binary(path), "-M", "virt", "-m", "128M", "-bios", "none",
               "-kernel", str(path), "-nographic", "-monitor", "none",
               "-drive", drive, "-device", "virtio-blk-device,drive=d0"]
    if not legacy:
        command[1:1] = ["-global", "virtio-mmio.force-legacy=false"]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=QEMU_TIMEOUT)
    return done.stdout, done.returncode


def golden(path):
    """(output bytes, exit status) recorded from QEMU for this image."""
    name = path.stem
    status = (GOLDEN / f"{name}.exit").read_text().strip()
    return (GOLDEN / f"{name}.out").read_bytes(), status if status == "runaway" else int(status)


def write_golden(path, output, status):
    (GOLDEN / f"{path.stem}.out").write_bytes(output)
    (GOLDEN / f"{path.stem}.exit").write_text(f"{status}\n")
