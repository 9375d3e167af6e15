"""virtio-blk: the paravirtualized disk (OASIS virtio 1.x, "Block Device").

The guest's driver puts whole requests in a virtqueue and writes one notify
register; the host then does all the I/O in one go and raises one interrupt.
A request is a descriptor chain (virtqueue.py) whose device-readable part
starts with a 16-byte header {u32 type, u32 reserved, u64 sector} (OUT data
follows it), and whose device-writable part holds IN data, then one status
byte.  The split between descriptors does not matter (spec "Message
Framing"): the device reads the parts as byte streams.

`process_block_queue` below is the specification of the device side;
minivm/_fastpath.pyx has the same function in Cython, and the two must give
byte-identical guest memory, used rings and image files (tests/test_virtio.py
checks that, on hostile rings too).  The image file is never read whole:
requests go to it with pread/pwrite at their sector.
"""
import os
import struct

from minivm.devices.virtqueue import NO_STATUS_BYTE, ChainError, GuestMemory, Virtqueue

SECTOR = 512

# -- feature bits (device-specific, then the generic ones we offer) -------------
VIRTIO_BLK_F_SIZE_MAX = 1       # config.size_max is the largest single buffer
VIRTIO_BLK_F_SEG_MAX = 2        # config.seg_max is the most data buffers per request
VIRTIO_BLK_F_RO = 5             # the disk is read-only
VIRTIO_BLK_F_BLK_SIZE = 6       # config.blk_size is the logical block size
VIRTIO_BLK_F_FLUSH = 9          # the FLUSH request exists
VIRTIO_F_RING_INDIRECT_DESC = 28
VIRTIO_F_RING_EVENT_IDX = 29
VIRTIO_F_VERSION_1 = 32         # the modern interface (virtio 1.0+)

# -- request types and status values ------------------------------------------------
VIRTIO_BLK_T_IN = 0             # read sectors into the guest
VIRTIO_BLK_T_OUT = 1            # write sectors from the guest
VIRTIO_BLK_T_FLUSH = 4          # make every completed write durable (fsync)
VIRTIO_BLK_T_GET_ID = 8         # the disk's serial number, 20 bytes
VIRTIO_BLK_S_OK = 0
VIRTIO_BLK_S_IOERR = 1
VIRTIO_BLK_S_UNSUPP = 2

HEADER = struct.Struct("<IIQ")
ID_BYTES = 20
SEG_MAX = 126                   # data buffers per request we accept (as QEMU offers)
SIZE_MAX = 1 << 20              # bytes in one buffer


class VirtioBlk:
    """The block device's personality: ID, features, config space, queue work."""

    device_id = 2
    queues = 1
    queue_size_max = 256

    def __init__(self, image, twin=None):
        """image: a DiskImage (minivm/devices/piodisk.py).  twin: the
        process_block_queue to use, this module's (the default) or the
        Cython one from minivm._fastpath."""
        self.image = image
        self.twin = twin or process_block_queue
        self.report = None    # report(head, type, sector, length, status): the trace's
        self._config = None

    def trace_requests(self, report):
        """Tell `report` about every request.  Only the Python twin can, so
        tracing virtio requests runs the specification."""
        self.report = report
        self.twin = process_block_queue

    def features(self, modern):
        bits = [VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE,
                VIRTIO_BLK_F_FLUSH, VIRTIO_F_RING_INDIRECT_DESC, VIRTIO_F_RING_EVENT_IDX]
        if self.image.read_only:
            bits.append(VIRTIO_BLK_F_RO)
        if modern:
            bits.append(VIRTIO_F_VERSION_1)
        return sum(1 << bit for bit in bits)

    def config(self):
        """The device-specific config space (spec 5.2.4), little-endian.  It
        never changes, so it is packed once, not on every guest read."""
        if self._config is None:
            # capacity, size_max, seg_max, geometry (cylinders, heads, sectors), blk_size
            self._config = struct.pack("<QIIHBBI", self.image.sectors, SIZE_MAX, SEG_MAX,
                                       0, 0, 0, SECTOR)
        return self._config

    def process(self, buffer, base, state):
        """Serve every available request on a queue."""
        image = self.image
        extra = {"report": self.report} if self.report else {}
        return self.twin(buffer, base, state, image.fd, image.sectors, image.read_only,
                         image.serial, **extra)


def process_block_queue(buffer, base, state, fd, sectors, read_only, serial, report=None):
    """Serve all available requests on the queue `state` describes.

    buffer/base: guest RAM and its guest physical address.  fd, sectors,
    read_only, serial: the disk image.  Returns (completed, moved, notify,
    needs_reset, low, high, fault): requests completed, data bytes moved,
    whether to interrupt the driver, whether the ring was broken (the
    device must then ask for a reset), the lowest and highest guest address
    written (None, None if none), for the translation-cache flush, and,
    for a broken ring, what broke it (a virtqueue.Fault; else None).
    report, if given, hears of each request served (the trace's virtio lines)."""
    memory = GuestMemory(buffer, base)
    queue = Virtqueue(memory, state)
    old_used_idx = state.used_idx
    written = WrittenRange()
    completed = moved = 0
    notify = False
    try:
        for _ in range(queue.pending()):
            head = queue.take()
            buffers = queue.chain(head)
            try:
                length, data = serve_request(memory, buffers, fd, sectors, read_only, serial,
                                             written)
            except ChainError as error:
                raise error.at(head)
            if report is not None:
                report(head, *describe_request(memory, buffers))
            written.add(queue.put_used(head, length), 8)
            completed += 1
            moved += data
        if completed:
            notify = queue.publish(old_used_idx, written.add)
    except ChainError as error:
        return completed, moved, False, True, written.low, written.high, error.fault()
    return completed, moved, notify, False, written.low, written.high, None


class WrittenRange:
    """The lowest and highest guest address the device wrote."""

    def __init__(self):
        self.low, self.high = None, None

    def add(self, address, length):
        end = address + length
        self.low = address if self.low is None else min(self.low, address)
        self.high = end if self.high is None else max(self.high, end)


def serve_request(memory, buffers, fd, sectors, read_only, serial, written):
    """Do one request; returns (bytes written into device-writable buffers,
    data bytes moved between guest and disk)."""
    readable, writable = split_chain(buffers)
    status_byte = last_byte(writable)
    status, data_written, moved = request_status(memory, readable, writable, fd, sectors,
                                                 read_only, serial, written)
    memory.write(status_byte, bytes([status]))
    written.add(status_byte, 1)
    return data_written + 1, moved


def describe_request(memory, buffers):
    """(type, sector, data length, status) of a request just served, for the trace."""
    readable, writable = split_chain(buffers)
    header = gather(memory, readable, 0, HEADER.size)
    kind, _, sector = HEADER.unpack(header) if len(header) == HEADER.size else (None, 0, 0)
    status = memory.read(last_byte(writable), 1)[0]
    length = sum(b.length for b in readable) - HEADER.size if kind == VIRTIO_BLK_T_OUT \
        else sum(b.length for b in writable) - 1
    return kind, sector, max(length, 0), status


def split_chain(buffers):
    """(readable, writable) buffers; readable ones must all come first."""
    first_writable = next((i for i, b in enumerate(buffers) if b.writable), len(buffers))
    readable, writable = buffers[:first_writable], buffers[first_writable:]
    if not writable or any(not b.writable for b in writable):
        raise ChainError(NO_STATUS_BYTE)
    return readable, writable


def last_byte(writable):
    """The address of the status byte: the last byte of the writable part."""
    for buffer in reversed(writable):
        if buffer.length:
            return buffer.address + buffer.length - 1
    raise ChainError(NO_STATUS_BYTE)


def request_status(memory, readable, writable, fd, sectors, read_only, serial, written):
    """(status, bytes written to the guest's buffers, data bytes moved) for one request."""
    readable_bytes = sum(b.length for b in readable)
    writable_bytes = sum(b.length for b in writable) - 1        # less the status byte
    failed = (VIRTIO_BLK_S_IOERR, 0, 0)
    if readable_bytes < HEADER.size:
        return failed
    kind, _, sector = HEADER.unpack(gather(memory, readable, 0, HEADER.size))
    if kind == VIRTIO_BLK_T_IN:
        length = writable_bytes
        if readable_bytes != HEADER.size or not in_range(sector, length, sectors):
            return failed
        try:
            scatter_from_file(memory, writable, length, fd, sector * SECTOR, written)
        except OSError:
            return failed
        return VIRTIO_BLK_S_OK, length, length
    if kind == VIRTIO_BLK_T_OUT:
        length = readable_bytes - HEADER.size
        if writable_bytes != 0 or read_only or not in_range(sector, length, sectors):
            return failed
        try:
            write_file_from(memory, readable, HEADER.size, length, fd, sector * SECTOR)
        except OSError:
            return failed
        return VIRTIO_BLK_S_OK, 0, length
    if kind == VIRTIO_BLK_T_FLUSH:
        try:
            os.fsync(fd)        # durable before the status says so
        except OSError:
            return failed
        return VIRTIO_BLK_S_OK, 0, 0
    if kind == VIRTIO_BLK_T_GET_ID:
        length = min(writable_bytes, ID_BYTES)
        scatter(memory, writable, serial.ljust(ID_BYTES, b"\0")[:length], written)
        return VIRTIO_BLK_S_OK, length, 0
    return VIRTIO_BLK_S_UNSUPP, 0, 0


def in_range(sector, length, sectors):
    """Whole sectors, all on the disk.  Written so that no sum can pass 2^64
    (the Cython twin computes in 64 bits, where sector + count would wrap)."""
    return length % SECTOR == 0 and sector <= sectors and length // SECTOR <= sectors - sector


def gather(memory, buffers, skip, length):
    """`length` bytes of the buffers' contents, after the first `skip`."""
    data = bytearray()
    for buffer in buffers:
        take = min(buffer.length - skip, length - len(data)) if skip < buffer.length else 0
        if take > 0:
            data += memory.read(buffer.address + skip, take)
        skip = max(0, skip - buffer.length)
        if len(data) == length:
            break
    return bytes(data)


def scatter(memory, buffers, data, written):
    """Write `data` across the buffers, in order."""
    done = 0
    for buffer in buffers:
        if done == len(data):
            break
        take = min(buffer.length, len(data) - done)
        if take:                 # a zero-length buffer holds nothing: skip it
            memory.write(buffer.address, data[done:done + take])
            written.add(buffer.address, take)
            done += take


def scatter_from_file(memory, buffers, length, fd, offset, written):
    """Read `length` bytes of the file at `offset` straight into the buffers
    (preadv into guest RAM, as the Cython twin does, so that a failed read
    leaves guest memory the same in both)."""
    views = slices(memory, buffers, 0, length)
    for view in views:        # recorded first: a failed read may still have written some
        written.add(view.address, len(view.data))
    transfer(os.preadv, fd, views, offset, length)


def write_file_from(memory, buffers, skip, length, fd, offset):
    """Write `length` bytes of the buffers, after `skip`, to the file at `offset`."""
    transfer(os.pwritev, fd, slices(memory, buffers, skip, length), offset, length)


class Slice:
    def __init__(self, address, data):
        self.address, self.data = address, data


def slices(memory, buffers, skip, length):
    """Guest memory views over `length` bytes of the buffers after `skip`."""
    views, done = [], 0
    for buffer in buffers:
        if done == length:
            break
        if skip >= buffer.length:
            skip -= buffer.length
            continue
        take = min(buffer.length - skip, length - done)
        start = memory.offset(buffer.address + skip, take)
        views.append(Slice(buffer.address + skip, memoryview(memory.buffer)[start:start + take]))
        done += take
        skip = 0
    return views


IOV_BATCH = 1024        # at most IOV_MAX buffers per preadv/pwritev call


def transfer(call, fd, views, offset, length):
    """All `length` bytes through preadv/pwritev, a batch of buffers at a time."""
    done = 0
    for first in range(0, len(views), IOV_BATCH):
        batch = [view.data for view in views[first:first + IOV_BATCH]]
        want = sum(len(data) for data in batch)
        if call(fd, batch, offset + done) != want:
            raise OSError("short transfer")
        done += want
    if done != length:
        raise OSError("short transfer")
