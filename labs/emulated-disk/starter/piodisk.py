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
    # TODO (part 3)
    raise NotImplementedError("traps_per_kib")

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
        """COMMAND was written.  Every command first clears ERR (status READY,
        error NONE); a command while DRQ is set aborts the transfer instead
        (ERROR_BUSY).  IDENTIFY streams self._identify() through DATA; READ
        and WRITE move COUNT sectors from SECTOR (count 0: nothing to do);
        FLUSH calls self.image.flush().  Errors: see ERROR_* above."""
        # TODO (part 1)
        self._fail(ERROR_COMMAND)

    def _identify(self):
        flags = 1 if self.image.read_only else 0
        fields = struct.pack(IDENTIFY_LAYOUT, b"MVDK", self.image.sectors, SECTOR, flags,
                             MODEL, self.image.serial)
        return fields.ljust(SECTOR, b"\0")

    # -- the data port -------------------------------------------------------------------

    def _read_data(self):
        """The guest read DATA: the next word of the sector buffer (little-endian).
        After the last word of a sector, the next sector is read from the image;
        after the last word of the last sector, DRQ clears.  Reading DATA with
        no read transfer under way is ERROR_NO_TRANSFER and reads 0."""
        # TODO (part 2)
        self._fail(ERROR_NO_TRANSFER)
        return 0

    def _write_data(self, value):
        """The guest wrote DATA: the next word of the sector buffer.  When a
        sector is full it goes to the image (self.image.write_sector) at once;
        after the last sector, DRQ clears."""
        # TODO (part 2)
        self._fail(ERROR_NO_TRANSFER)

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
