"""The PIO disk, device side: an emulated disk that moves data a word per trap.

The guest firmware (minivm's firmware/pio_disk.elf, the real driver in
firmware/piodisk.h) drives these registers at 0x1020_0000.  Each of its
loads and stores is a VM exit, and minivm calls `read`/`write` below with
the offset and the access size.  Your model must behave exactly like the
register interface in the lab's README (the same one minivm documents in
its own README, "The PIO disk"), so that the unchanged driver works.

Registers (all 32-bit):

    0x00 SECTOR_LO   rw  first sector of the transfer, low 32 bits
    0x04 SECTOR_HI   rw  ... high 32 bits
    0x08 COUNT       rw  sectors to transfer
    0x0C COMMAND     w   READ, WRITE, FLUSH or IDENTIFY: starts the command
    0x10 STATUS      r   READY | DRQ | ERR
    0x14 ERROR       r   why ERR is set (ERROR_* below), 0 if it is not
    0x18 DATA        rw  the data port: the next 4 bytes of the transfer
    0x1C IRQ_ENABLE  rw  kept and read back (no interrupt in this lab)
    0x20 CAPACITY_LO r   disk size in 512-byte sectors, low 32 bits
    0x24 CAPACITY_HI r   ... high 32 bits
"""
import struct

SECTOR = 512

SECTOR_LO, SECTOR_HI, COUNT, COMMAND = 0x00, 0x04, 0x08, 0x0C
STATUS, ERROR, DATA, IRQ_ENABLE = 0x10, 0x14, 0x18, 0x1C
CAPACITY_LO, CAPACITY_HI = 0x20, 0x24

CMD_READ, CMD_WRITE, CMD_FLUSH, CMD_IDENTIFY = 1, 2, 3, 4

STATUS_DRQ = 0x02      # the data port has data to read, or room to write
STATUS_ERR = 0x04      # the last command failed: see ERROR
STATUS_READY = 0x08    # ready for a command (never with DRQ: a transfer is not done)

ERROR_NONE = 0
ERROR_COMMAND = 1      # unknown command
ERROR_RANGE = 2        # sectors past the end of the disk (nothing is moved)
ERROR_READ_ONLY = 3    # WRITE to a read-only disk
ERROR_IO = 4           # the host could not read or write the image
ERROR_NO_TRANSFER = 5  # DATA used with no transfer (in that direction) under way
ERROR_BUSY = 6         # a command arrived in the middle of a transfer: it is aborted

IDENTIFY_LAYOUT = "<4s4xQII8x32s32s"   # magic, capacity, sector size, flags, model, serial
MODEL = b"minivm PIO disk"


def open_image(path, read_only=False):
    """The disk image: .sectors, .read_only, .serial, .read_sector(n, buffer),
    .write_sector(n, data), .flush() -- minivm's DiskImage."""
    from minivm.devices.piodisk import DiskImage
    return DiskImage(path, read_only)


def traps_per_kib(stats, device="piodisk"):
    """Traps per KiB of payload for `device`, from Machine.stats() / RunResult.stats:
    stats[device] is {"traps": N, "bytes": payload bytes, ...}.  0.0 when the
    device took no trap; infinity when it took traps but moved no payload."""
    numbers = stats[device]
    traps, payload = numbers["traps"], numbers["bytes"] or 0
    if traps == 0:
        return 0.0
    if payload == 0:
        return float("inf")
    return traps * 1024 / payload


class PioDisk:
    def __init__(self, image):
        self.image = image
        self.reset()

    def reset(self):
        self.sector = 0
        self.count = 0
        self.irq_enable = 0
        self.status = STATUS_READY
        self.error = ERROR_NONE
        self._end_transfer()

    # -- registers ------------------------------------------------------------------

    def read(self, offset, size):
        if offset == DATA:
            return self._read_data()
        return {SECTOR_LO: self.sector & 0xFFFFFFFF, SECTOR_HI: self.sector >> 32,
                COUNT: self.count, STATUS: self.status, ERROR: self.error,
                IRQ_ENABLE: self.irq_enable,
                CAPACITY_LO: self.image.sectors & 0xFFFFFFFF,
                CAPACITY_HI: self.image.sectors >> 32}.get(offset, 0)

    def write(self, offset, size, value):
        value &= 0xFFFFFFFF
        if offset == SECTOR_LO:
            self.sector = (self.sector & ~0xFFFFFFFF) | value
        elif offset == SECTOR_HI:
            self.sector = (self.sector & 0xFFFFFFFF) | value << 32
        elif offset == COUNT:
            self.count = value
        elif offset == COMMAND:
            self._command(value)
        elif offset == DATA:
            self._write_data(value)
        elif offset == IRQ_ENABLE:
            self.irq_enable = value & 1

    # -- commands ----------------------------------------------------------------------

    def _command(self, command):
        if self.status & STATUS_DRQ:
            self._end_transfer()
            return self._fail(ERROR_BUSY)
        self.status, self.error = STATUS_READY, ERROR_NONE
        if command == CMD_IDENTIFY:
            self._begin(None, 1, writing=False)
            self.buffer[:] = self._identify()
        elif command in (CMD_READ, CMD_WRITE):
            writing = command == CMD_WRITE
            if writing and self.image.read_only:
                return self._fail(ERROR_READ_ONLY)
            if self.sector + self.count > self.image.sectors:
                return self._fail(ERROR_RANGE)
            if self.count:
                self._begin(self.sector, self.count, writing)
        elif command == CMD_FLUSH:
            self._io(self.image.flush)
        else:
            self._fail(ERROR_COMMAND)

    def _identify(self):
        flags = 1 if self.image.read_only else 0
        fields = struct.pack(IDENTIFY_LAYOUT, b"MVDK", self.image.sectors, SECTOR, flags,
                             MODEL, self.image.serial)
        return fields.ljust(SECTOR, b"\0")

    # -- the data port -------------------------------------------------------------------

    def _begin(self, first, count, writing):
        self.next_sector, self.sectors_left, self.writing = first, count, writing
        self.position = 0
        if first is not None and not writing and not self._io(
                lambda: self.image.read_sector(first, self.buffer)):
            return
        self.status = STATUS_DRQ

    def _read_data(self):
        if not self.status & STATUS_DRQ or self.writing:
            self._fail(ERROR_NO_TRANSFER)
            return 0
        word = int.from_bytes(self.buffer[self.position:self.position + 4], "little")
        self.position += 4
        if self.position == SECTOR:
            self._sector_done()
        return word

    def _write_data(self, value):
        if not self.status & STATUS_DRQ or not self.writing:
            return self._fail(ERROR_NO_TRANSFER)
        self.buffer[self.position:self.position + 4] = value.to_bytes(4, "little")
        self.position += 4
        if self.position == SECTOR:
            if self._io(lambda: self.image.write_sector(self.next_sector, self.buffer)):
                self._sector_done()

    def _sector_done(self):
        self.sectors_left -= 1
        self.position = 0
        if self.sectors_left == 0:
            self._end_transfer()
            self.status = STATUS_READY
            return
        self.next_sector += 1
        if not self.writing:
            self._io(lambda: self.image.read_sector(self.next_sector, self.buffer))

    def _end_transfer(self):
        self.next_sector, self.sectors_left, self.writing = None, 0, False
        self.position = 0
        self.buffer = bytearray(SECTOR)
        self.status &= ~STATUS_DRQ

    def _io(self, operation):
        """A host I/O operation; a failure becomes ERROR_IO for the guest."""
        try:
            operation()
            return True
        except OSError:
            self._end_transfer()
            self._fail(ERROR_IO)
            return False

    def _fail(self, error):
        self.error = error
        self.status = STATUS_ERR | (self.status & STATUS_DRQ or STATUS_READY)
