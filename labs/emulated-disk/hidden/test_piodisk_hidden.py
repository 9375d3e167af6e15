"""Hidden tests of the emulated-disk lab (graded, not shipped to students)."""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))

from piodisk_rig import (COMMAND, COUNT, DATA, ERROR, FLUSH, IDENTIFY, READ,  # noqa: E402
                         SECTOR_HI, SECTOR_LO, STATUS, WRITE, Pair, run_pio_disk)

from minivm.grading import labkit  # noqa: E402


def test_flush(tmp_path):
    """FLUSH completes with READY and no error."""
    disk = Pair(tmp_path)
    disk.command(FLUSH)
    disk.rd(STATUS)


def test_read_only_image(tmp_path):
    """A read-only image refuses WRITE (error 3), stays unchanged, and pio_disk exits 3."""
    disk = Pair(tmp_path, read_only=True)
    disk.command(WRITE, sector=1, count=1)
    disk.rd(DATA)
    disk.rd(ERROR)
    disk.check_images()
    (mine, mine_image), (ref, ref_image) = run_pio_disk(tmp_path, read_only=True)
    assert (mine.exit_code, mine.output) == (ref.exit_code, ref.output), (
        f"on a read-only image pio_disk exited {mine.exit_code} printing:\n"
        f"{mine.output.decode(errors='replace')[-400:]}\nexpected {ref.exit_code}:\n"
        f"{ref.output.decode()[-400:]}")
    assert mine_image == ref_image, "a read-only image changed"


def test_range_errors(tmp_path):
    """Transfers past the end fail with error 2 and move nothing; COUNT 0 is a no-op."""
    disk = Pair(tmp_path, sectors=16)
    disk.command(READ, sector=15, count=2)
    disk.rd(DATA)
    disk.command(WRITE, sector=16, count=1)
    disk.command(READ, sector=(1 << 32) + 1, count=1)
    disk.command(READ, sector=3, count=0)
    disk.rd(DATA)
    disk.command(READ, sector=15, count=1)
    disk.read_words(128)
    disk.check_images()


def test_data_port_misuse(tmp_path):
    """DATA with no transfer, or in the wrong direction, is error 5; reads give 0."""
    disk = Pair(tmp_path)
    disk.rd(DATA)
    disk.rd(STATUS)
    disk.rd(ERROR)
    disk.wr(DATA, 0x1234)
    disk.rd(STATUS)
    disk.command(READ, sector=2, count=1)
    disk.wr(DATA, 0x99)
    disk.rd(STATUS)
    disk.read_words(128)
    disk.command(WRITE, sector=2, count=1)
    disk.rd(DATA)
    disk.rd(STATUS)
    disk.write_words(range(128))
    disk.check_images()


def test_command_during_transfer(tmp_path):
    """A command in the middle of a transfer aborts it with error 6."""
    disk = Pair(tmp_path)
    disk.command(READ, sector=0, count=4)
    disk.read_words(200)
    disk.wr(COMMAND, IDENTIFY)
    disk.rd(STATUS)
    disk.rd(ERROR)
    disk.rd(DATA)
    disk.command(WRITE, sector=1, count=2)
    disk.write_words(range(130))
    disk.wr(COMMAND, READ)
    disk.rd(STATUS)
    disk.rd(ERROR)
    disk.check_images()


def test_unknown_command_and_recovery(tmp_path):
    """An unknown command is error 1; the next good command clears ERR."""
    disk = Pair(tmp_path)
    disk.command(9)
    disk.command(0)
    disk.command(IDENTIFY)
    disk.read_words(128)
    disk.rd(STATUS)


def test_sector_hi(tmp_path):
    """SECTOR_HI is part of the sector number."""
    disk = Pair(tmp_path)
    disk.wr(SECTOR_LO, 1)
    disk.wr(SECTOR_HI, 1)
    disk.wr(COUNT, 1)
    disk.wr(COMMAND, READ)
    disk.rd(STATUS)
    disk.rd(ERROR)
    disk.rd(SECTOR_HI)


def test_traps_per_kib(tmp_path):
    """traps_per_kib(stats) from a real run of pio_disk on minivm's disk."""
    [(ref, _)] = run_pio_disk(tmp_path, who=("reference",))
    module = labkit.load("piodisk.py")
    numbers = ref.stats["piodisk"]
    expected = numbers["traps"] * 1024 / numbers["bytes"]
    got = module.traps_per_kib(ref.stats)
    assert isinstance(got, (int, float)) and abs(got - expected) < 1e-6 * expected, (
        f"traps_per_kib gave {got!r} for {numbers['traps']} traps and {numbers['bytes']} "
        f"bytes; expected {expected:.3f}")
    uart = ref.stats["uart0"]
    got = module.traps_per_kib(ref.stats, "uart0")
    expected = uart["traps"] * 1024 / uart["bytes"]
    assert isinstance(got, (int, float)) and abs(got - expected) < 1e-6 * expected, (
        f"traps_per_kib(stats, 'uart0') gave {got!r}, expected {expected:.3f}")
    quiet = {"clint": {"traps": 0, "bytes": 0, "registers": {}}}
    assert module.traps_per_kib(quiet, "clint") == 0, "a device with no traps costs 0 per KiB"


def test_random_sequences(tmp_path):
    """Random register sequences (seeded): every read agrees with the PIO disk."""
    sequences, agreed, first_failure = 12, 0, None
    module = labkit.load("piodisk.py")
    for seed in range(sequences):
        rng = random.Random(seed)
        folder = tmp_path / f"seq{seed}"
        folder.mkdir()
        disk = Pair(folder, sectors=8, read_only=seed % 5 == 4, seed=seed, module=module)
        try:
            for _ in range(120):
                choice = rng.random()
                if choice < 0.15:
                    disk.command(rng.choice([READ, WRITE, FLUSH, IDENTIFY, 7]),
                                 sector=rng.randrange(10), count=rng.randrange(4))
                elif choice < 0.6:
                    disk.rd(DATA)
                elif choice < 0.85:
                    disk.wr(DATA, rng.getrandbits(32))
                else:
                    disk.rd(rng.choice([STATUS, ERROR, COUNT, SECTOR_LO]))
            disk.check_images()
            agreed += 1
        except (AssertionError, labkit.SubmissionError) as error:
            first_failure = first_failure or f"sequence {seed}: {error}"
            if isinstance(error, (labkit.SubmissionTimeout, labkit.SubmissionCrashed)):
                module = labkit.load("piodisk.py")     # a fresh process for the next one
    if agreed < sequences:
        raise labkit.Partial(agreed / sequences,
                             f"{agreed} of {sequences} random sequences agree; {first_failure}")
