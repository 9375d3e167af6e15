"""The virtio-blk disk end to end: the virtio_blk firmware's driver on the
real vCPU, on both transports (modern and legacy) and both virtqueue twins,
against real image files, and against QEMU running the same firmware on the
same image (when QEMU is here)."""
import os
import random

import pytest

from conftest import PATTERN, firmware, fnv1a, minivm, needs_qemu
from oracle import run_qemu_with_disk

SECTOR = 512
TRANSPORTS = ["modern", "legacy"]
TWINS = ["cython", "python"]


def make_image(tmp_path, size=256 * 1024, seed=1, name="disk.img"):
    path = tmp_path / name
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def run_minivm(image, transport="modern", twin="cython", *options, extra=()):
    spec = str(image) + ("" if transport == "modern" else ",legacy") + "".join(options)
    env = dict(os.environ, MINIVM_PURE="1" if twin == "python" else "0")
    return minivm("run", firmware("virtio_blk"), "--virtio-blk", spec, *extra, env=env,
                  timeout=300)


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_demo_reads_writes_flushes(tmp_path, transport, twin):
    image = make_image(tmp_path)
    original = image.read_bytes()
    done = run_minivm(image, transport, twin)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert done.stdout.decode() == (
        f"virtio-blk: version {1 if transport == 'legacy' else 2}\n"
        f"capacity: 512 sectors\n"
        f"fnv1a of sectors 0-127: 0x{fnv1a(original[:65536]):08x}\n"
        f"wrote, flushed and read back the last sector: ok\n")
    assert image.read_bytes() == original[:-SECTOR] + PATTERN


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_read_only_image_is_left_alone(tmp_path, transport):
    image = make_image(tmp_path)
    original = image.read_bytes()
    done = run_minivm(image, transport, "cython", ",ro")
    assert done.returncode == 3
    assert "capacity: 512 sectors, read-only\n" in done.stdout.decode()
    assert "WRITE failed: status 1\n" in done.stdout.decode()
    assert image.read_bytes() == original


def test_stats_count_one_notify_per_batch(tmp_path):
    image = make_image(tmp_path)
    done = run_minivm(image, "modern", "cython", extra=("--stats",))
    line = next(line for line in done.stderr.decode().splitlines()
                if line.strip().startswith("virtio0"))
    # 16 reads in one notify, then the write, the flush and the read-back.
    assert "19 requests in 4 notifies" in line
    traps, payload = int(line.split()[1]), int(line.split()[2])
    assert payload == 64 * 1024 + 2 * SECTOR
    assert traps * 1024 / payload < 1.0        # the PIO disk needs ~258 per KiB


def test_both_twins_leave_identical_images(tmp_path):
    images = [make_image(tmp_path, name=f"{twin}.img") for twin in TWINS]
    for twin, image in zip(TWINS, images):
        assert run_minivm(image, "modern", twin).returncode == 0
    assert images[0].read_bytes() == images[1].read_bytes()


def test_bad_virtio_option_is_one_line(tmp_path):
    image = make_image(tmp_path, size=4096)
    done = minivm("run", "virtio_blk", "--virtio-blk", f"{image},fast")
    assert done.returncode == 2 and done.stderr.decode().count("\n") == 1
    assert "IMAGE[,ro][,legacy]" in done.stderr.decode()


@needs_qemu
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("read_only", [False, True], ids=["rw", "ro"])
def test_same_output_and_image_as_qemu(tmp_path, transport, read_only):
    ours, theirs = make_image(tmp_path, name="ours.img"), make_image(tmp_path, name="qemu.img")
    done = run_minivm(ours, transport, "cython", ",ro" if read_only else "")
    output, status = run_qemu_with_disk(firmware("virtio_blk"), theirs,
                                        legacy=transport == "legacy", read_only=read_only)
    assert (done.stdout, done.returncode) == (output, status)
    assert ours.read_bytes() == theirs.read_bytes()


# virtio_irq: an interrupt-driven S-mode driver with paging, as small kernels
# (xv6-riscv's) have: only DriverFeatures word 0 written, so no VERSION_1; the
# notify store made with interrupts masked and followed by a load from RAM.
def expected_virtio_irq_output(image):
    return ("FEATURES_OK without VIRTIO_F_VERSION_1: ok\n"
            "the load after the notify read 0x5eed1e55 ok\n"
            f"request done, status 0, fnv1a of sector 0: 0x{fnv1a(image.read_bytes()[:SECTOR]):08x},"
            " interrupts: 1 ok\n")


@pytest.mark.parametrize("twin", TWINS)
def test_interrupt_driven_driver_without_version_1(tmp_path, twin):
    # The load after the notify ran once, with its value from RAM: the
    # translation flush for the DMA waits until the notify is complete.
    image = make_image(tmp_path)
    env = dict(os.environ, MINIVM_PURE="1" if twin == "python" else "0")
    done = minivm("run", firmware("virtio_irq"), "--virtio-blk", str(image), env=env)
    assert (done.stdout.decode(), done.returncode) == (expected_virtio_irq_output(image), 0)


@needs_qemu
def test_interrupt_driven_driver_as_on_qemu(tmp_path):
    ours, theirs = make_image(tmp_path, name="ours.img"), make_image(tmp_path, name="qemu.img")
    done = minivm("run", firmware("virtio_irq"), "--virtio-blk", str(ours))
    assert (done.stdout, done.returncode) == run_qemu_with_disk(firmware("virtio_irq"), theirs)


SIGN_EXTENDED_LINE = (
    "minivm: virtio0: DEVICE_NEEDS_RESET: request at head 0, descriptor 0 of the descriptor "
    "table: 0xffffffff80002010+16 is outside guest RAM (0x80002010 sign-extended to 64 bits? "
    "cast the pointer through uint32_t)\n")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sign_extended_buffer_addresses_are_refused_and_explained(tmp_path, transport):
    """An RV32 driver writing (uint64_t)pointer: the chain is refused and
    minivm names the descriptor and the address on stderr."""
    image = make_image(tmp_path)
    original = image.read_bytes()
    spec = str(image) + ("" if transport == "modern" else ",legacy")
    done = minivm("run", firmware("virtio_signext-rv32"), "--virtio-blk", spec, timeout=300)
    assert done.returncode == 1
    assert done.stderr.decode() == SIGN_EXTENDED_LINE
    assert done.stdout.decode().endswith("virtio-blk: no answer from the device\n")
    assert image.read_bytes() == original


@needs_qemu
def test_sign_extended_buffer_addresses_fail_on_qemu_too(tmp_path):
    """QEMU 7.2 maps the first buffer that is not RAM through its one bounce
    buffer and fails the second ("bogus descriptor"), so the same driver
    times out there too, with the same output (modern transport)."""
    ours, theirs = make_image(tmp_path, name="ours.img"), make_image(tmp_path, name="qemu.img")
    done = minivm("run", firmware("virtio_signext-rv32"), "--virtio-blk", ours, timeout=300)
    output, status = run_qemu_with_disk(firmware("virtio_signext-rv32"), theirs)
    assert (done.stdout, done.returncode) == (output, status)
    assert b"virtio-blk: device status 0x4f\n" in output     # DEVICE_NEEDS_RESET on both
    assert ours.read_bytes() == theirs.read_bytes()
