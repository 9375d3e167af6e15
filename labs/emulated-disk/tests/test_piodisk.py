"""Visible tests of the emulated-disk lab (the hidden ones check the rest).

    pytest labs/emulated-disk/tests                          # starter/piodisk.py
    MINIVM_SUBMISSION=path/to/your/folder pytest labs/emulated-disk/tests

Every test drives your disk and minivm's with the same accesses and compares
each value read (piodisk_rig.Pair), or runs the real driver on both.
"""
from piodisk_rig import (CAPACITY_HI, CAPACITY_LO, COUNT, IDENTIFY, IRQ_ENABLE, READ,
                         SECTOR_HI, SECTOR_LO, STATUS, WRITE, Pair, run_pio_disk)


def test_registers_at_power_on(tmp_path):
    """CAPACITY, STATUS and the rw registers read back as on the PIO disk."""
    disk = Pair(tmp_path, sectors=24)
    for register in (STATUS, CAPACITY_LO, CAPACITY_HI, SECTOR_LO, COUNT):
        disk.rd(register)
    disk.wr(SECTOR_LO, 0x1234)
    disk.wr(SECTOR_HI, 0x5)
    disk.wr(COUNT, 3)
    disk.wr(IRQ_ENABLE, 1)
    for register in (SECTOR_LO, SECTOR_HI, COUNT, IRQ_ENABLE):
        disk.rd(register)


def test_identify(tmp_path):
    """IDENTIFY streams one sector of facts through DATA, then READY without DRQ."""
    disk = Pair(tmp_path)
    disk.command(IDENTIFY)
    disk.read_words(128)
    disk.rd(STATUS)


def test_read_sectors(tmp_path):
    """READ of 3 sectors from sector 5: every word, and STATUS between sectors."""
    disk = Pair(tmp_path)
    disk.command(READ, sector=5, count=3)
    for _ in range(3):
        disk.read_words(128)
        disk.rd(STATUS)


def test_write_sectors(tmp_path):
    """WRITE of 2 sectors reaches the image file, sector by sector."""
    disk = Pair(tmp_path)
    disk.command(WRITE, sector=9, count=2)
    disk.write_words([0xD15C0000 | i for i in range(128)])
    disk.rd(STATUS)
    disk.write_words([0xFACE0000 | i for i in range(128)])
    disk.rd(STATUS)
    disk.check_images()
    disk.command(READ, sector=9, count=2)
    disk.read_words(256)


def test_pio_disk_firmware(tmp_path):
    """The real driver (pio_disk.elf): same output, exit status and image as on minivm's disk."""
    (mine, mine_image), (ref, ref_image) = run_pio_disk(tmp_path)
    output = mine.output.decode(errors="replace")
    assert mine.exit_code == ref.exit_code, (
        f"pio_disk exited with {mine.exit_code} ({mine.message or 'finished'}), "
        f"expected {ref.exit_code}; it printed:\n{output[-600:]}")
    assert output == ref.output.decode(), (f"pio_disk printed:\n{output}\nexpected:\n"
                                           f"{ref.output.decode()}")
    assert mine_image == ref_image, "the image differs after the run"
