"""The PIO disk: an emulated block device that moves data one word per trap.

A minivm-only device in the style of ATA's programmed I/O (PIO): the guest
writes a sector number, a count and a command, then moves every byte of data
through one 32-bit data register.  Each access is a VM exit, so a 512-byte
sector costs 128 traps for the data alone: the "emulated device" model at its
purest, and the baseline the virtio disk is measured against.

Registers (all 32-bit, little-endian):

    0x00 SECTOR_LO   rw  first sector of the transfer, low 32 bits
    0x04 SECTOR_HI   rw  ... high 32 bits
    0x08 COUNT       rw  sectors to transfer (READ/WRITE)
    0x0C COMMAND     w   READ, WRITE, FLUSH or IDENTIFY; starts the command
    0x10 STATUS      r   READY | DRQ | ERR | BUSY (reading it acknowledges the interrupt)
    0x14 ERROR       r   why ERR is set (ERROR_* below), 0 if it is not
    0x18 DATA        rw  the data port: the next 4 bytes of the transfer
    0x1C IRQ_ENABLE  rw  bit 0: raise IRQ 12 when a command completes or fails
    0x20 CAPACITY_LO r   disk size in 512-byte sectors, low 32 bits
    0x24 CAPACITY_HI r   ... high 32 bits

A command runs the whole time the guest moves its data: READ fills a
512-byte sector buffer from the image (pread, one sector at a time: the
image is never copied into memory) and sets DRQ; each DATA read returns the
next word; after the last word of the last sector DRQ clears and READY
rises (READY is never set together with DRQ: while data moves, the
command is not done).  WRITE is the same the other way: each full sector buffer is written
to the image (pwrite) as it fills, and a sector is acknowledged (READY) only
after it reached the file.  FLUSH calls fsync.  IDENTIFY streams one sector
of facts about the disk (layout below).

Misuse is an error status, never a host exception: a command while a
transfer is in progress aborts it (ERROR_BUSY); reading or writing DATA
with no transfer under way (ERROR_NO_TRANSFER); a transfer past the end of
the disk (ERROR_RANGE, nothing is moved); WRITE to a read-only disk
(ERROR_READ_ONLY); an unknown command (ERROR_COMMAND); a failed host read or
write (ERROR_IO).  The next command clears ERR.
"""
import os
import struct

from minivm.devices.device import Device

SECTOR = 512

# -- registers -------------------------------------------------------------
SECTOR_LO = 0x00
SECTOR_HI = 0x04
COUNT = 0x08
COMMAND = 0x0C
STATUS = 0x10
ERROR = 0x14
DATA = 0x18
IRQ_ENABLE = 0x1C
CAPACITY_LO = 0x20
CAPACITY_HI = 0x24

# -- COMMAND values --------------------------------------------------------
CMD_READ = 1
CMD_WRITE = 2
CMD_FLUSH = 3
CMD_IDENTIFY = 4

# -- STATUS bits -------------------------------------------------------------
STATUS_BUSY = 0x01     # a command is running (never seen: minivm's I/O ends within the trap)
STATUS_DRQ = 0x02      # the data port has data to read, or room to write
STATUS_ERR = 0x04      # the last command failed: see ERROR
STATUS_READY = 0x08    # idle, ready for a command: never together with DRQ

# -- ERROR values ------------------------------------------------------------
ERROR_NONE = 0
ERROR_COMMAND = 1      # unknown command
ERROR_RANGE = 2        # sectors past the end of the disk
ERROR_READ_ONLY = 3    # WRITE to a read-only disk
ERROR_IO = 4           # the host could not read or write the image
ERROR_NO_TRANSFER = 5  # DATA accessed with no transfer under way
ERROR_BUSY = 6         # a command arrived in the middle of a transfer

# IDENTIFY's sector: magic, capacity in sectors, sector size, flags, model, serial.
IDENTIFY_MAGIC = b"MVDK"
IDENTIFY_LAYOUT = "<4s4xQII8x32s32s"     # offsets 0, 8, 16, 20, 32, 64
FLAG_READ_ONLY = 1
MODEL = b"minivm PIO disk"

REGISTERS = {SECTOR_LO: "SECTOR_LO", SECTOR_HI: "SECTOR_HI", COUNT: "COUNT",
             COMMAND: "COMMAND", STATUS: "STATUS", ERROR: "ERROR", DATA: "DATA",
             IRQ_ENABLE: "IRQ_ENABLE", CAPACITY_LO: "CAPACITY_LO", CAPACITY_HI: "CAPACITY_HI"}


class PioDisk(Device):
    REGISTERS = REGISTERS

    def __init__(self, image, irq=None):
        """image: a DiskImage; irq(level) drives the completion interrupt line."""
        super().__init__()
        self.image = image
        self.irq = irq or (lambda level: None)
        self.reset()

    def reset(self):
        self.sector = 0
        self.count = 0
        self.status = STATUS_READY
        self.error = ERROR_NONE
        self.irq_enable = 0
        self.interrupt = False       # a completion not yet acknowledged (STATUS read)
        self._end_transfer()
        self.update_irq()

    # -- guest accesses ------------------------------------------------------------

    def read(self, offset, size):
        if offset == DATA:
            return self._read_data()
        if offset == STATUS:
            self.interrupt = False   # reading STATUS acknowledges the interrupt, as on ATA
            self.update_irq()
            return self.status
        return {SECTOR_LO: self.sector & 0xFFFFFFFF, SECTOR_HI: self.sector >> 32,
                COUNT: self.count, ERROR: self.error, IRQ_ENABLE: self.irq_enable,
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
            self.update_irq()

    def describe(self, offset, value, is_write):
        if offset == COMMAND and is_write:
            return {CMD_READ: "READ", CMD_WRITE: "WRITE", CMD_FLUSH: "FLUSH",
                    CMD_IDENTIFY: "IDENTIFY"}.get(value, "unknown command")
        return ""

    # -- commands ------------------------------------------------------------------

    def _command(self, command):
        if self.status & STATUS_DRQ:
            self._end_transfer()
            return self._fail(ERROR_BUSY)
        self.error = ERROR_NONE
        if command == CMD_READ:
            self._start(self.sector, self.count, writing=False)
        elif command == CMD_WRITE:
            if self.image.read_only:
                return self._fail(ERROR_READ_ONLY)
            self._start(self.sector, self.count, writing=True)
        elif command == CMD_FLUSH:
            self._io(self.image.flush) and self._complete()
        elif command == CMD_IDENTIFY:
            self.buffer = bytearray(self._identify())
            self.next_sector, self.sectors_left, self.writing, self.position = None, 1, False, 0
            self.status = STATUS_DRQ
        else:
            self._fail(ERROR_COMMAND)

    def _start(self, first, count, writing):
        if first + count > self.image.sectors:
            return self._fail(ERROR_RANGE)
        if count == 0:
            return self._complete()
        self.next_sector, self.sectors_left, self.writing = first, count, writing
        self.position = 0
        self.buffer = bytearray(SECTOR)
        if not writing and not self._fill_buffer():
            return
        self.status = STATUS_DRQ          # a transfer, not READY: a command now would abort it

    def _identify(self):
        flags = FLAG_READ_ONLY if self.image.read_only else 0
        fields = struct.pack(IDENTIFY_LAYOUT, IDENTIFY_MAGIC, self.image.sectors, SECTOR, flags,
                             MODEL, self.image.serial)
        return fields.ljust(SECTOR, b"\0")

    # -- the data port -----------------------------------------------------------

    def _read_data(self):
        if not self.status & STATUS_DRQ or self.writing:
            self._fail(ERROR_NO_TRANSFER)
            return 0
        word = int.from_bytes(self.buffer[self.position:self.position + 4], "little")
        self.position += 4
        self.payload_bytes += 4
        if self.position == SECTOR:
            self._sector_done()
        return word

    def _write_data(self, value):
        if not self.status & STATUS_DRQ or not self.writing:
            return self._fail(ERROR_NO_TRANSFER)
        self.buffer[self.position:self.position + 4] = value.to_bytes(4, "little")
        self.position += 4
        self.payload_bytes += 4
        if self.position == SECTOR:
            if not self._io(lambda: self.image.write_sector(self.next_sector, self.buffer)):
                return
            self._sector_done()

    def _sector_done(self):
        self.sectors_left -= 1
        self.position = 0
        if self.sectors_left == 0:
            self._end_transfer()
            return self._complete()
        if self.next_sector is not None:
            self.next_sector += 1
            if not self.writing:
                self._fill_buffer()

    def _fill_buffer(self):
        return self._io(lambda: self.image.read_sector(self.next_sector, self.buffer))

    # -- ending a command ------------------------------------------------------------

    def _io(self, operation):
        """Run a host I/O operation; a failure becomes ERROR_IO for the guest."""
        try:
            operation()
            return True
        except OSError:
            self._end_transfer()
            self._fail(ERROR_IO)
            return False

    def _end_transfer(self):
        self.next_sector, self.sectors_left, self.writing = None, 0, False
        self.position = 0
        self.buffer = bytearray(SECTOR)
        self.status &= ~STATUS_DRQ

    def _complete(self):
        self.status = STATUS_READY
        self.interrupt = True
        self.update_irq()

    def _fail(self, error):
        # A misused data port leaves the transfer going (DRQ, not READY).
        self.error = error
        self.status = STATUS_ERR | (self.status & STATUS_DRQ or STATUS_READY)
        self.interrupt = True
        self.update_irq()

    def update_irq(self):
        self.irq(bool(self.irq_enable and self.interrupt))


class DiskImage:
    """A raw disk image file, read and written a sector at a time (never whole)."""

    def __init__(self, path, read_only=False):
        from minivm import hostfiles
        from minivm.errors import MinivmError
        self.path = path
        # Read-only as asked, or when the file may not be written: by this
        # user, or by anyone (no write bit in its mode, even for root).
        self.read_only = read_only or not hostfiles.may_write(path)
        self.fd, info = hostfiles.open_host_file(
            path, kinds=(hostfiles.REGULAR, hostfiles.BLOCK), write=not self.read_only,
            what="disk image")
        size = hostfiles.size_of(self.fd, info)
        if size == 0 or size % SECTOR:
            os.close(self.fd)
            raise MinivmError(f"{path}: disk image size {size} is not a positive multiple "
                              f"of {SECTOR} bytes")
        self.sectors = size // SECTOR
        self.serial = f"minivm-{info.st_ino:x}".encode()[:32]

    @classmethod
    def from_option(cls, text):
        """`IMAGE[,ro]`, as --disk takes it (`,,` for a comma in the path)."""
        from minivm.errors import MinivmError
        from minivm.hostfiles import split_option
        path, options = split_option(text)
        unknown = [option for option in options if option != "ro"]
        if unknown or not path:
            raise MinivmError(f"bad disk {text!r}: use IMAGE or IMAGE,ro (,, for a comma in IMAGE)")
        return cls(path, read_only="ro" in options)

    def read_sector(self, sector, buffer):
        data = os.pread(self.fd, SECTOR, sector * SECTOR)
        if len(data) != SECTOR:
            raise OSError("short read")
        buffer[:] = data

    def write_sector(self, sector, data):
        if os.pwrite(self.fd, bytes(data), sector * SECTOR) != SECTOR:
            raise OSError("short write")

    def flush(self):
        os.fsync(self.fd)

    def close(self):
        os.close(self.fd)
