"""The PIO disk: the register interface on real image files, and the
pio_disk firmware driving it on the real vCPU (random, read-only, large
sparse images), with the file checked afterwards."""
import os
import re
import struct

import pytest

from conftest import PATTERN, firmware, fnv1a, minivm, noise
from minivm.devices import piodisk
from minivm.devices.piodisk import (CMD_FLUSH, CMD_IDENTIFY, CMD_READ, CMD_WRITE, COMMAND,
                                    COUNT, DATA, ERROR, ERROR_BUSY, ERROR_COMMAND,
                                    ERROR_NO_TRANSFER, ERROR_RANGE, ERROR_READ_ONLY,
                                    IRQ_ENABLE, SECTOR_HI, SECTOR_LO, STATUS, STATUS_DRQ,
                                    STATUS_ERR, STATUS_READY, DiskImage, PioDisk)
from minivm.errors import MinivmError

SECTOR = 512


def image_file(tmp_path, size, name="disk.img", content=None):
    path = tmp_path / name
    path.write_bytes(content if content is not None else noise(size))
    return path


class Rig:
    def __init__(self, path, read_only=False):
        self.levels = []
        self.disk = PioDisk(DiskImage(str(path), read_only), irq=self.levels.append)

    def rd(self, offset):
        return self.disk.read(offset, 4)

    def wr(self, offset, value):
        self.disk.write(offset, 4, value)

    def command(self, command, sector=0, count=1):
        self.wr(SECTOR_LO, sector & 0xFFFFFFFF)
        self.wr(SECTOR_HI, sector >> 32)
        self.wr(COUNT, count)
        self.wr(COMMAND, command)

    def read_words(self, n):
        return b"".join(self.rd(DATA).to_bytes(4, "little") for _ in range(n))

    def write_words(self, data):
        for i in range(0, len(data), 4):
            self.wr(DATA, int.from_bytes(data[i:i + 4], "little"))


@pytest.fixture
def image(tmp_path):
    return image_file(tmp_path, 16 * SECTOR)


def test_read_streams_sectors_from_the_file(image):
    rig = Rig(image)
    rig.command(CMD_READ, sector=3, count=2)
    assert rig.rd(STATUS) == STATUS_DRQ          # a transfer: not READY for a command
    assert rig.read_words(256) == image.read_bytes()[3 * SECTOR:5 * SECTOR]
    assert rig.rd(STATUS) == STATUS_READY
    assert rig.disk.payload_bytes == 1024


def test_write_reaches_the_file_sector_by_sector(image):
    before = image.read_bytes()
    rig = Rig(image)
    rig.command(CMD_WRITE, sector=15, count=1)
    rig.write_words(PATTERN[:508])
    assert image.read_bytes() == before          # not a whole sector yet
    assert rig.rd(STATUS) == STATUS_DRQ          # ...so not READY either
    rig.write_words(PATTERN[508:])
    assert rig.rd(STATUS) == STATUS_READY        # acknowledged only now...
    assert image.read_bytes() == before[:15 * SECTOR] + PATTERN   # ...and it is in the file
    rig.command(CMD_FLUSH)
    assert rig.rd(STATUS) == STATUS_READY


def test_identify_describes_the_disk(image):
    rig = Rig(image, read_only=True)
    rig.command(CMD_IDENTIFY)
    data = rig.read_words(128)
    magic, sectors, size, flags, model, _ = struct.unpack(piodisk.IDENTIFY_LAYOUT, data[:96])
    assert (magic, sectors, size, flags) == (b"MVDK", 16, 512, 1)
    assert model.rstrip(b"\0") == b"minivm PIO disk"
    assert rig.rd(STATUS) == STATUS_READY


def test_capacity_registers(image):
    rig = Rig(image)
    assert (rig.rd(piodisk.CAPACITY_LO), rig.rd(piodisk.CAPACITY_HI)) == (16, 0)


@pytest.mark.parametrize("sector,count", [(16, 1), (15, 2), (1 << 40, 1)])
def test_out_of_range_is_an_error_and_moves_nothing(image, sector, count):
    rig = Rig(image)
    rig.command(CMD_READ, sector=sector, count=count)
    assert rig.rd(STATUS) == STATUS_READY | STATUS_ERR
    assert rig.rd(ERROR) == ERROR_RANGE


def test_read_only_disk_refuses_writes(image):
    before = image.read_bytes()
    rig = Rig(image, read_only=True)
    rig.command(CMD_WRITE, sector=0, count=1)
    rig.write_words(PATTERN)
    assert rig.rd(ERROR) in (ERROR_READ_ONLY, ERROR_NO_TRANSFER)
    assert rig.rd(STATUS) & STATUS_ERR
    assert image.read_bytes() == before


def test_ready_never_shows_with_drq(image):
    # READY means the command is done (every sector in the file): a driver
    # that waits for it must not see it while data still moves.
    rig = Rig(image)
    seen = []
    for command in (CMD_READ, CMD_WRITE, CMD_IDENTIFY):
        rig.command(command, sector=1, count=2)
        for _ in range(256 if command != CMD_IDENTIFY else 128):
            seen.append(rig.rd(STATUS))
            rig.wr(DATA, 0) if command == CMD_WRITE else rig.rd(DATA)
        seen.append(rig.rd(STATUS))
    assert not [status for status in seen if status & STATUS_DRQ and status & STATUS_READY]
    assert seen.count(STATUS_READY) == 3 and seen.count(STATUS_DRQ) == 256 + 256 + 128


def test_misusing_the_data_port_mid_transfer_keeps_the_transfer(image):
    rig = Rig(image)
    rig.command(CMD_WRITE, count=1)
    assert rig.rd(DATA) == 0                     # a read in a write transfer
    assert rig.rd(STATUS) == STATUS_ERR | STATUS_DRQ
    rig.write_words(PATTERN)                     # the transfer goes on to its end
    assert rig.rd(STATUS) == STATUS_READY
    assert image.read_bytes()[:SECTOR] == PATTERN


def test_data_port_without_a_transfer_is_an_error(image):
    rig = Rig(image)
    assert rig.rd(DATA) == 0
    assert rig.rd(STATUS) & STATUS_ERR and rig.rd(ERROR) == ERROR_NO_TRANSFER
    rig.command(CMD_READ)              # the next command clears the error
    assert rig.rd(ERROR) == 0


def test_command_during_a_transfer_aborts_it(image):
    rig = Rig(image)
    rig.command(CMD_READ, count=2)
    rig.read_words(10)
    rig.command(CMD_READ)
    assert rig.rd(STATUS) == STATUS_READY | STATUS_ERR
    assert rig.rd(ERROR) == ERROR_BUSY
    assert rig.rd(DATA) == 0 and rig.rd(ERROR) == ERROR_NO_TRANSFER


def test_unknown_command(image):
    rig = Rig(image)
    rig.command(99)
    assert rig.rd(ERROR) == ERROR_COMMAND


def test_completion_interrupt_until_status_is_read(image):
    rig = Rig(image)
    rig.wr(IRQ_ENABLE, 1)
    rig.command(CMD_READ)
    rig.read_words(128)
    assert rig.levels[-1] is True
    rig.rd(STATUS)
    assert rig.levels[-1] is False


# -- the firmware on the real vCPU ------------------------------------------------------

def run_demo(*args):
    return minivm("run", firmware("pio_disk"), *args, timeout=300)


@pytest.mark.parametrize("size", [64 * 1024, 100 * 1024 + 512])
def test_demo_on_a_random_image(tmp_path, size):
    image = image_file(tmp_path, size)
    original = image.read_bytes()
    done = run_demo("--disk", image, "--stats")
    output = done.stdout.decode()
    assert done.returncode == 0, output + done.stderr.decode()
    assert f"capacity: {size // SECTOR} sectors\n" in output
    assert f"fnv1a of sectors 0-127: 0x{fnv1a(original[:65536]):08x}\n" in output
    assert image.read_bytes() == original[:-SECTOR] + PATTERN    # only the last sector changed


def test_stats_show_one_data_trap_per_four_bytes(tmp_path):
    image = image_file(tmp_path, 64 * 1024)
    done = run_demo("--disk", image, "--stats")
    stats = done.stderr.decode()
    line = next(line for line in stats.splitlines() if line.strip().startswith("piodisk"))
    traps, payload, per_kib = line.split()[1:4]
    data_traps = sum(int(count) for count in re.findall(r"DATA (?:read|write) (\d+)", line))
    assert data_traps * 4 == int(payload) == 128 * 512 + 512 + 512 + 512   # 64 KiB, identify, write, read back
    assert 256 <= float(per_kib) < 260


def test_demo_on_a_read_only_image(tmp_path):
    image = image_file(tmp_path, 64 * 1024)
    original = image.read_bytes()
    done = run_demo("--disk", f"{image},ro")
    assert done.returncode == 3
    assert "WRITE failed: error 3\n" in done.stdout.decode()
    assert image.read_bytes() == original


def test_demo_on_a_large_sparse_image(tmp_path):
    image = tmp_path / "big.img"
    with open(image, "wb") as stream:
        stream.truncate(8 << 30)                  # 8 GiB, no blocks allocated
    done = run_demo("--disk", image)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert f"capacity: {(8 << 30) // SECTOR} sectors\n" in done.stdout.decode()
    assert f"0x{fnv1a(bytes(65536)):08x}" in done.stdout.decode()
    assert os.path.getsize(image) == 8 << 30
    with open(image, "rb") as stream:
        stream.seek((8 << 30) - SECTOR)
        assert stream.read() == PATTERN
    assert os.stat(image).st_blocks * 512 < 1 << 20     # still sparse: nothing copied whole


# -- bad input: one line, and the file is never created or changed ----------------------

def assert_refused(done, *words):
    stderr = done.stderr.decode()
    assert done.returncode == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    for word in words:
        assert word in stderr, stderr


def test_missing_image_is_not_created(tmp_path):
    path = tmp_path / "nope.img"
    assert_refused(run_demo("--disk", path), "nope.img", "No such file")
    assert not path.exists()


@pytest.mark.parametrize("size", [0, 1000, 64 * 1024 + 1])
def test_wrong_size_is_refused_and_untouched(tmp_path, size):
    image = image_file(tmp_path, size)
    original = image.read_bytes()
    assert_refused(run_demo("--disk", image), "multiple of 512")
    assert image.read_bytes() == original


def test_directory_is_refused(tmp_path):
    assert_refused(run_demo("--disk", tmp_path), "directory")


def test_unknown_option_is_refused(tmp_path):
    image = image_file(tmp_path, 1024)
    assert_refused(run_demo("--disk", f"{image},rw"), "IMAGE,ro")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: no permission error to see")
def test_unreadable_image_is_refused(tmp_path):
    image = image_file(tmp_path, 1024)
    image.chmod(0)
    assert_refused(run_demo("--disk", image), "Permission denied")


def test_in_process_errors_are_minivm_errors(tmp_path):
    with pytest.raises(MinivmError, match="not a positive multiple"):
        DiskImage(str(image_file(tmp_path, 100)))


def test_image_without_write_permission_is_read_only_even_for_root(tmp_path):
    image = image_file(tmp_path, 64 * 1024)
    image.chmod(0o444)
    original = image.read_bytes()
    done = run_demo("--disk", image)                  # no ,ro: the mode bits say it
    assert done.returncode == 3
    assert "WRITE failed: error 3\n" in done.stdout.decode()
    assert image.read_bytes() == original


@pytest.mark.parametrize("source", ["fifo", "/dev/zero"])
def test_not_a_disk_image(tmp_path, source):
    if source == "fifo":
        source = tmp_path / "fifo"
        os.mkfifo(source)        # opening it read-only would wait for a writer forever
    assert_refused(run_demo("--disk", f"{source},ro"), "not a regular file")


def test_path_with_a_comma(tmp_path):
    image = image_file(tmp_path, 64 * 1024, name="disk,v2.img")
    original = image.read_bytes()
    done = run_demo("--disk", str(image).replace(",", ",,") + ",ro")
    assert done.returncode == 3 and b"capacity: 128 sectors" in done.stdout
    assert image.read_bytes() == original
    assert_refused(run_demo("--disk", image), "IMAGE,ro")     # one comma: an option
