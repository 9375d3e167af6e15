"""The lab's test rig: the student's PIO disk next to minivm's own.

`Pair` drives two disks with the same register accesses, each on its own
copy of the same image: the student's (in the student's process, through
minivm.grading.labkit) and minivm's (minivm.devices.piodisk.PioDisk, the reference).
Every read must give the same value on both, and the image files must end
the same.  `run_pio_disk` runs the real driver (firmware/pio_disk.elf) on a
real machine with the student's disk at 0x1020_0000.
"""
import os
import random

from minivm.grading import labkit
from minivm.devices.piodisk import DiskImage, PioDisk

SECTOR = 512
PIODISK_BASE = 0x1020_0000
NAMES = {0x00: "SECTOR_LO", 0x04: "SECTOR_HI", 0x08: "COUNT", 0x0C: "COMMAND",
         0x10: "STATUS", 0x14: "ERROR", 0x18: "DATA", 0x1C: "IRQ_ENABLE",
         0x20: "CAPACITY_LO", 0x24: "CAPACITY_HI"}
SECTOR_LO, SECTOR_HI, COUNT, COMMAND = 0x00, 0x04, 0x08, 0x0C
STATUS, ERROR, DATA, IRQ_ENABLE, CAPACITY_LO, CAPACITY_HI = 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24
READ, WRITE, FLUSH, IDENTIFY = 1, 2, 3, 4
COMMANDS = {1: "READ", 2: "WRITE", 3: "FLUSH", 4: "IDENTIFY"}


def show(offset, value):
    if not isinstance(value, int):
        return repr(value)
    if offset == STATUS:
        flags = [name for bit, name in ((8, "READY"), (2, "DRQ"), (4, "ERR"), (1, "BUSY"))
                 if value & bit]
        return f"0x{value:x} ({'|'.join(flags) or 'none'})"
    return hex(value)


def make_image(folder, name, sectors, seed):
    path = os.path.join(folder, name)
    with open(path, "wb") as stream:
        stream.write(random.Random(seed).randbytes(sectors * SECTOR))
    return path


class Pair:
    def __init__(self, folder, sectors=16, read_only=False, seed=1, module=None):
        self.mine_path = make_image(folder, "student.img", sectors, seed)
        self.ref_path = make_image(labkit.judge_folder(), "reference.img", sectors, seed)
        if read_only:
            for path in (self.mine_path, self.ref_path):
                os.chmod(path, 0o444)
        module = module or labkit.load("piodisk.py")
        self.disk = module.PioDisk(module.open_image(self.mine_path, read_only))
        self._read = labkit.method(self.disk, "read")
        self._write = labkit.method(self.disk, "write")
        self.reference = PioDisk(DiskImage(self.ref_path, read_only))
        # IDENTIFY's serial comes from the file's inode: give the reference the student's.
        probe = DiskImage(self.mine_path, True)
        self.reference.image.serial = probe.serial
        os.close(probe.fd)
        self.history = []

    def rd(self, offset):
        got = self._read(offset, 4)
        want = self.reference.read(offset, 4)
        self.history.append(f"read {NAMES.get(offset, hex(offset))}")
        if got != want:
            steps = "; ".join(self.history[-6:])
            raise AssertionError(f"reading {NAMES.get(offset, hex(offset))} gave "
                                 f"{show(offset, got)}, the PIO disk gives {show(offset, want)} "
                                 f"(last accesses: {steps})")
        return got

    def wr(self, offset, value):
        self._write(offset, 4, value)
        self.reference.write(offset, 4, value)
        name = NAMES.get(offset, hex(offset))
        shown = COMMANDS.get(value, hex(value)) if offset == COMMAND else hex(value)
        self.history.append(f"write {name}={shown}")

    def command(self, command, sector=0, count=1):
        self.wr(SECTOR_LO, sector & 0xFFFFFFFF)
        self.wr(SECTOR_HI, sector >> 32)
        self.wr(COUNT, count)
        self.wr(COMMAND, command)
        self.rd(STATUS)
        self.rd(ERROR)

    def read_words(self, count):
        return [self.rd(DATA) for _ in range(count)]

    def write_words(self, words):
        for word in words:
            self.wr(DATA, word)

    def check_images(self):
        with open(self.mine_path, "rb") as mine, open(self.ref_path, "rb") as ref:
            a, b = mine.read(), ref.read()
        if a != b:
            first = next(i for i in range(len(a)) if a[i] != b[i]) if len(a) == len(b) else 0
            raise AssertionError(f"the image file differs from what the PIO disk writes "
                                 f"(first at byte {first}, sector {first // SECTOR})")


def run_pio_disk(folder, read_only=False, sectors=256, seed=7, who=("student", "reference")):
    """pio_disk.elf on the student's disk and on minivm's: (RunResult, image bytes) each."""
    from minivm.machine import Machine     # (unicorn: only when a test runs a guest)
    results = []
    for name in who:
        path = make_image(folder if name == "student" else labkit.judge_folder(),
                          f"{name}-run.img", sectors, seed)
        if read_only:
            os.chmod(path, 0o444)
        option = path + (",ro" if read_only else "")
        if name == "student":
            module = labkit.load("piodisk.py")
            disk = module.PioDisk(module.open_image(path, read_only))
            machine = Machine(labkit.firmware("pio_disk"), max_insns=labkit.max_insns())
            labkit.attach(machine, "piodisk", PIODISK_BASE,
                          labkit.RemoteDevice(disk, registers=NAMES))
        else:
            machine = Machine(labkit.firmware("pio_disk"), max_insns=labkit.max_insns(),
                              disk=option)
        result = machine.run()
        with open(path, "rb") as stream:
            results.append((result, stream.read()))
    return results
