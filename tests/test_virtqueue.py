"""The virtio-blk request path on real split virtqueues, on both twins.

minivm.devices.virtio_blk.process_block_queue is the specification (pure
Python, walking rings with minivm.devices.virtqueue); minivm._fastpath has the
same function in Cython.  Every test here builds a ring in a bytearray of
guest "RAM", hands it to a twin together with a real DiskImage on a temporary
file, and checks what a guest would see: the returned tuple
(completed, moved, notify, needs_reset, low, high), the data buffers, the
status bytes, the used ring, and the bytes on disk.

The RAM is a memoryview slice in the middle of a larger bytearray; the guard
bytes on either side must never change, whatever the ring says.  Every call
runs under a faulthandler watchdog, so a hang (even inside C code) ends the
run with a traceback instead of never returning.

Ring addresses (QueueState.desc/avail/used) are in RAM and aligned in all
but one section ("outside the transport's guarantees"): the transport checks
them once, when the queue goes live (VirtioMmio._queue_problem;
tests/test_virtio_transport.py fuzzes it).  All the rest
-- descriptors, avail ring contents, indirect tables, headers -- is hostile
territory.

The twins must agree byte for byte: the differential tests run every
scenario below, and hypothesis-generated random rings, through both on fresh
copies of RAM and of the image file.  They skip while the Cython twin is not
built; the Python-side fuzz runs regardless.

Register values, flags and layouts are spelled out here, from the virtio 1.x
spec, rather than taken from the modules under test.
"""
import copy
import faulthandler
import os
import random
import struct
from collections import namedtuple

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from minivm.devices import virtio_blk
from minivm.devices.piodisk import DiskImage
from minivm.devices.virtqueue import QueueState, describe_fault

# -- the twins ------------------------------------------------------------------------------------
# minivm._fastpath directly, not through minivm.fastpath: MINIVM_PURE must not
# hide the extension from its own tests.
try:
    import minivm._fastpath as _fastpath
except ImportError as error:
    _fastpath = None
    MISSING = f"minivm._fastpath is not built ({error})"
else:
    MISSING = ("minivm._fastpath has no process_block_queue yet "
               "(write it, then rebuild: pip install -e .)")
PYTHON_TWIN = virtio_blk.process_block_queue
CYTHON_TWIN = getattr(_fastpath, "process_block_queue", None)
needs_cython = pytest.mark.skipif(CYTHON_TWIN is None, reason=MISSING)

TWINS = [pytest.param(PYTHON_TWIN, id="python"),
         pytest.param(CYTHON_TWIN, id="cython", marks=needs_cython)]


@pytest.fixture(params=TWINS)
def twin(request):
    return request.param


# -- the virtio 1.x constants (spelled out, not imported) -----------------------------------------
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
AVAIL_F_NO_INTERRUPT = 1
T_IN, T_OUT, T_FLUSH, T_GET_ID = 0, 1, 4, 8
S_OK, S_IOERR, S_UNSUPP = 0, 1, 2
SECTOR = 512
ID_BYTES = 20
MAX_INDIRECT = 1024
U64 = (1 << 64) - 1

# -- the test machine -----------------------------------------------------------------------------
RAM_BASE = 0x8000_0000
RAM_SIZE = 1 << 20
GUARD = 4096
GUARD_BYTE = 0xA5
POISON = 0xEE                 # device-writable buffers hold this before a request
SECTORS = 64
DISK = random.Random(0x5EED).randbytes(SECTORS * SECTOR)
# Where the builder puts the rings (offsets from RAM_BASE); room for a queue of 8192.
DESC_AT, AVAIL_AT, USED_AT, HEAP_AT = 0x0, 0x20000, 0x28000, 0x40000
WATCHDOG = 60                 # seconds one call may take before the run is aborted

Result = namedtuple("Result", "completed moved notify needs_reset low high fault")


class Guest:
    """Guest RAM: a memoryview in the middle of a bytearray, guard bytes around it."""

    def __init__(self, size=RAM_SIZE, base=RAM_BASE, whole=None):
        self.base, self.size = base, size
        if whole is None:
            whole = bytearray([GUARD_BYTE]) * (size + 2 * GUARD)
            whole[GUARD:GUARD + size] = bytes(size)
        self.whole = whole
        self.ram = memoryview(self.whole)[GUARD:GUARD + size]

    def clone(self):
        return Guest(self.size, self.base, bytearray(self.whole))

    def guards_intact(self):
        guard = bytes([GUARD_BYTE]) * GUARD
        return self.whole[:GUARD] == guard and self.whole[-GUARD:] == guard

    def _offset(self, address, length):
        assert self.base <= address and address + length <= self.base + self.size, \
            "the test itself addressed outside RAM"
        return address - self.base

    def write(self, address, data):
        start = self._offset(address, len(data))
        self.ram[start:start + len(data)] = data

    def read(self, address, length):
        start = self._offset(address, length)
        return bytes(self.ram[start:start + length])

    def u16(self, address):
        return struct.unpack("<H", self.read(address, 2))[0]

    def put_u16(self, address, value):
        self.write(address, struct.pack("<H", value & 0xFFFF))

    def snapshot(self):
        return bytes(self.ram)


class Req:
    """One block request as the builder laid it out in guest RAM."""

    def __init__(self, guest, head, data, status_at):
        self.guest = guest
        self.head = head
        self.data = data              # [(address, length)] of the device-writable data
        self.status_at = status_at    # the status byte's address (None: no status)

    def status(self):
        return self.guest.read(self.status_at, 1)[0]

    def data_bytes(self):
        return b"".join(self.guest.read(address, length) for address, length in self.data)


class Ring:
    """A split virtqueue in a Guest, driven the way a driver would."""

    def __init__(self, guest, size=16, event_idx=False, indirect=False, start=0, used_start=None):
        self.guest = guest
        base = guest.base
        self.state = QueueState(size, base + DESC_AT, base + AVAIL_AT, base + USED_AT,
                                event_idx=event_idx, indirect=indirect)
        used_start = start if used_start is None else used_start
        self.state.last_avail, self.state.used_idx = start, used_start
        self.avail_idx = start                      # the driver's copy of avail.idx
        guest.put_u16(self.state.avail + 2, start)
        guest.put_u16(self.state.used + 2, used_start)
        self.free = 0                               # the next unused descriptor
        self.heap = base + HEAP_AT

    @property
    def size(self):
        return self.state.size

    # -- memory for buffers and tables -------------------------------------------------
    def alloc(self, length, align=16):
        address = -(-self.heap // align) * align
        self.heap = address + max(length, 1)
        assert self.heap <= self.guest.base + self.guest.size, "test heap exhausted"
        return address

    def put(self, data, align=16):
        address = self.alloc(len(data), align)
        self.guest.write(address, data)
        return address

    # -- descriptors ------------------------------------------------------------------
    def desc(self, index, address, length, flags=0, next=0, table=None):
        table = self.state.desc if table is None else table
        self.guest.write(table + 16 * index,
                         struct.pack("<QIHH", address & U64, length, flags, next))

    def chain(self, parts):
        """Descriptors for parts [(address, length, writable)], linked; the head index."""
        head = self.free
        for i, (address, length, writable) in enumerate(parts):
            last = i == len(parts) - 1
            flags = (F_WRITE if writable else 0) | (0 if last else F_NEXT)
            self.desc(head + i, address, length, flags, 0 if last else head + i + 1)
        self.free += len(parts)
        return head

    def table(self, parts, extra=0):
        """An indirect table holding the chain `parts` (plus `extra` unused entries)."""
        table = self.alloc(16 * (len(parts) + extra))
        for i, (address, length, writable) in enumerate(parts):
            last = i == len(parts) - 1
            flags = (F_WRITE if writable else 0) | (0 if last else F_NEXT)
            self.desc(i, address, length, flags, 0 if last else i + 1, table=table)
        return table, 16 * (len(parts) + extra)

    def indirect(self, parts, flags=F_INDIRECT):
        """One direct descriptor pointing at an indirect table with `parts`; its index."""
        table, length = self.table(parts)
        head = self.free
        self.desc(head, table, length, flags)
        self.free += 1
        return head

    # -- the block request --------------------------------------------------------------
    def request(self, kind, sector=0, *, out=b"", out_split=None, in_split=(), header=None,
                header_split=(16,), status=True, indirect=False, header_writable=False,
                in_writable=True, out_writable=False):
        """A virtio-blk request chain: header, OUT data, IN data, status."""
        header = struct.pack("<IIQ", kind, 0, sector) if header is None else header
        parts, at = [], 0
        for n in header_split:
            parts.append((self.put(header[at:at + n]), n, header_writable))
            at += n
        at = 0
        for n in (out_split or ([len(out)] if out else [])):
            parts.append((self.put(out[at:at + n]), n, out_writable))
            at += n
        data = []
        for n in in_split:
            address = self.put(bytes([POISON]) * n)
            parts.append((address, n, in_writable))
            data.append((address, n))
        status_at = None
        if status:
            status_at = self.put(bytes([POISON]))
            parts.append((status_at, 1, True))
        head = self.indirect(parts) if indirect else self.chain(parts)
        return Req(self.guest, head, data, status_at)

    # -- the available ring ---------------------------------------------------------------
    def offer(self, *heads):
        state = self.state
        for head in heads:
            self.guest.put_u16(state.avail + 4 + 2 * (self.avail_idx % state.size), head)
            self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.guest.put_u16(state.avail + 2, self.avail_idx)

    def set_avail_idx(self, value):
        self.guest.put_u16(self.state.avail + 2, value)

    def set_avail_flags(self, flags):
        self.guest.put_u16(self.state.avail, flags)

    def set_used_event(self, value):
        self.guest.put_u16(self.state.avail + 4 + 2 * self.size, value)

    # -- the used ring -------------------------------------------------------------------------
    def used_idx(self):
        return self.guest.u16(self.state.used + 2)

    def used(self, n):
        """The n-th used element ever written (counted like used.idx): (id, len)."""
        slot = self.state.used + 4 + 8 * (n % self.size)
        return struct.unpack("<II", self.guest.read(slot, 8))

    def avail_event(self):
        return self.guest.u16(self.state.used + 4 + 8 * self.size)


# -- the disk image -------------------------------------------------------------------------------

def make_image(path, read_only=False, content=DISK):
    with open(path, "wb") as f:
        f.write(content)
    return DiskImage(str(path), read_only=read_only)


def disk_bytes(image):
    with open(image.path, "rb") as f:
        return f.read()


@pytest.fixture
def disk(tmp_path):
    image = make_image(tmp_path / "disk.img")
    yield image
    image.close()


@pytest.fixture
def ro_disk(tmp_path):
    image = make_image(tmp_path / "ro.img", read_only=True)
    yield image
    image.close()


# -- calling a twin -------------------------------------------------------------------------------

def changed_span(before, after):
    """(first, end) offsets of the bytes that differ, or None."""
    if before == after:
        return None
    step, first, end = 4096, 0, len(before)
    while before[first:first + step] == after[first:first + step]:
        first += step
    while before[first] == after[first]:
        first += 1
    while before[max(0, end - step):end] == after[max(0, end - step):end]:
        end -= step
    while before[end - 1] == after[end - 1]:
        end -= 1
    return first, end


def invoke(twin, guest, state, image):
    """One process_block_queue call under the watchdog; the guards checked."""
    faulthandler.dump_traceback_later(WATCHDOG, exit=True)
    try:
        out = twin(guest.ram, guest.base, state, image.fd, image.sectors, image.read_only,
                   image.serial)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert guest.guards_intact(), "the device wrote outside guest RAM"
    assert isinstance(out, tuple) and len(out) == 7
    return Result(*out)


def call(twin, guest, state, image):
    """One process_block_queue call, with every check that holds whatever the ring."""
    before = guest.snapshot()
    result = invoke(twin, guest, state, image)
    assert isinstance(result.notify, bool) and isinstance(result.needs_reset, bool)
    assert (result.fault is not None) == result.needs_reset    # a reset always says why
    assert 0 <= result.completed <= state.size
    # (low, high) must cover every byte the device changed: it drives the
    # translation-cache flush.
    span = changed_span(before, guest.snapshot())
    if result.low is None:
        assert result.high is None
        assert span is None, "guest RAM changed but (low, high) is (None, None)"
    else:
        assert guest.base <= result.low < result.high <= guest.base + guest.size
        if span is not None:
            assert result.low <= guest.base + span[0] and guest.base + span[1] <= result.high
    return result


def run(twin, ring, image):
    return call(twin, ring.guest, ring.state, image)


# -- scenarios: rings built once, run on each twin (and diffed between them) ----------------------
# A scenario builds a ring in a fresh Guest and returns (ring, requests).  Its
# options: read_only (the image), ram (the RAM size).

SCENARIOS = {}
HOSTILE = []          # scenarios after which the device must ask for a reset, having done nothing


def scenario(read_only=False, ram=RAM_SIZE, hostile=False):
    def register(build):
        build.read_only, build.ram = read_only, ram
        SCENARIOS[build.__name__] = build
        if hostile:
            HOSTILE.append(build.__name__)
        return build
    return register


def build(name):
    builder = SCENARIOS[name]
    return builder(Guest(builder.ram))


def one(guest, size=16, **request):
    """A ring with one request made available."""
    ring = Ring(guest, size)
    req = ring.request(**request)
    ring.offer(req.head)
    return ring, [req]


OUT_DATA = random.Random(7).randbytes(4 * SECTOR)

# well-formed requests
for _name, _request in {
    "in_one": dict(kind=T_IN, sector=3, in_split=(1024,)),
    "in_split": dict(kind=T_IN, sector=5, header_split=(8, 8), in_split=(512, 100, 412, 1024)),
    "in_header_in_three": dict(kind=T_IN, sector=9, header_split=(1, 7, 8), in_split=(512,)),
    "in_last_sectors": dict(kind=T_IN, sector=62, in_split=(1024,)),
    "in_no_data": dict(kind=T_IN, sector=SECTORS),
    "out_one": dict(kind=T_OUT, sector=10, out=OUT_DATA[:1024], out_split=(300, 724)),
    "out_last_sector": dict(kind=T_OUT, sector=63, out=OUT_DATA[:512]),
    "flush": dict(kind=T_FLUSH),
    "flush_with_sector": dict(kind=T_FLUSH, sector=12345),
    "get_id_20": dict(kind=T_GET_ID, in_split=(20,)),
    "get_id_32": dict(kind=T_GET_ID, in_split=(32,)),
    "get_id_7": dict(kind=T_GET_ID, in_split=(7,)),
    "get_id_split": dict(kind=T_GET_ID, in_split=(5, 15)),
    "get_id_no_buffer": dict(kind=T_GET_ID),
    "unsupported_2": dict(kind=2, in_split=(512,)),
    "unsupported_discard": dict(kind=11, out=OUT_DATA[:16]),
    "unsupported_ffffffff": dict(kind=0xFFFFFFFF),
    # IOERR: the request is well framed, but wrong
    "in_past_end": dict(kind=T_IN, sector=63, in_split=(1024,)),
    "in_at_end": dict(kind=T_IN, sector=SECTORS, in_split=(512,)),
    "in_sector_wraps": dict(kind=T_IN, sector=U64, in_split=(512,)),
    "in_sector_wraps_2": dict(kind=T_IN, sector=U64 - 1, in_split=(1024,)),
    "in_sector_times_512_wraps": dict(kind=T_IN, sector=1 << 55, in_split=(512,)),
    "out_past_end": dict(kind=T_OUT, sector=63, out=OUT_DATA[:1024]),
    "out_sector_wraps": dict(kind=T_OUT, sector=U64, out=OUT_DATA[:512]),
    "in_not_multiple": dict(kind=T_IN, sector=0, in_split=(500,)),
    "in_not_multiple_split": dict(kind=T_IN, sector=0, in_split=(512, 1)),
    "out_not_multiple": dict(kind=T_OUT, sector=0, out=OUT_DATA[:100]),
    "short_header_12": dict(kind=T_IN, sector=0, header_split=(12,), in_split=(512,)),
    "short_header_15_split": dict(kind=T_FLUSH, header_split=(8, 7)),
    "header_writable": dict(kind=T_IN, sector=0, header_writable=True, in_split=(512,)),
    "in_data_readable": dict(kind=T_IN, sector=0, in_split=(512,), in_writable=False),
    "in_with_extra_readable": dict(kind=T_IN, sector=0, out=OUT_DATA[:512], in_split=(512,)),
    "out_with_writable_data": dict(kind=T_OUT, sector=0, out=OUT_DATA[:512], in_split=(512,)),
    "in_indirect": dict(kind=T_IN, sector=7, header_split=(8, 8), in_split=(512, 512),
                        indirect=True),
    "out_indirect": dict(kind=T_OUT, sector=20, out=OUT_DATA, out_split=(512, 1024, 512),
                         indirect=True),
    "get_id_indirect": dict(kind=T_GET_ID, in_split=(20,), indirect=True),
    # a zero-length data buffer before the data
    "in_zero_length_buffer_first": dict(kind=T_IN, sector=2, in_split=(0, 512)),
    "get_id_zero_length_buffer_first": dict(kind=T_GET_ID, in_split=(0, 20)),
}.items():
    def _build(guest, _request=_request):
        indirect = _request.get("indirect", False)
        ring = Ring(guest, 16, indirect=indirect)
        req = ring.request(**_request)
        ring.offer(req.head)
        return ring, [req]
    _build.__name__ = _name
    scenario()(_build)


@scenario(read_only=True)
def out_read_only(guest):
    return one(guest, kind=T_OUT, sector=4, out=OUT_DATA[:512])


@scenario(read_only=True)
def in_read_only(guest):
    return one(guest, kind=T_IN, sector=4, in_split=(512,))


@scenario()
def in_status_shares_buffer(guest):
    """One writable buffer of 513 bytes: the data, then the status byte."""
    ring = Ring(guest)
    req = ring.request(T_IN, sector=1, in_split=(513,), status=False)
    req.data, req.status_at = [(req.data[0][0], 512)], req.data[0][0] + 512
    ring.offer(req.head)
    return ring, [req]


@scenario()
def trailing_zero_length_writable(guest):
    """A zero-length writable descriptor after the status: the status is the last byte."""
    ring = Ring(guest)
    header = ring.put(struct.pack("<IIQ", T_IN, 0, 6))
    data = ring.put(bytes([POISON]) * 512)
    status = ring.put(bytes([POISON]))
    head = ring.chain([(header, 16, False), (data, 512, True), (status, 1, True),
                       (ring.alloc(0), 0, True)])
    ring.offer(head)
    return ring, [Req(guest, head, [(data, 512)], status)]


def data_above_status(guest, kind, sector):
    """One request whose data buffer lies above its status byte in RAM, so
    the range the device reports written shows whether it touched the data."""
    ring = Ring(guest)
    header = ring.put(struct.pack("<IIQ", kind, 0, sector))
    status = ring.put(bytes([POISON]))
    data = ring.put(bytes([POISON]) * 512)
    head = ring.chain([(header, 16, False), (data, 512, kind == T_IN), (status, 1, True)])
    ring.offer(head)
    return ring, [Req(guest, head, [(data, 512)] if kind == T_IN else [], status)]


@scenario()
def in_last_u64_sector_data_above_status(guest):
    """Sector 2^64-1: sector + 1 wraps to 0 in 64 bits, which must not pass
    as "on the disk" (IOERR, and the data buffer untouched)."""
    return data_above_status(guest, T_IN, U64)


@scenario()
def out_last_u64_sector_data_above_status(guest):
    return data_above_status(guest, T_OUT, U64)


def mixed_batch(ring):
    return [ring.request(T_IN, sector=1, in_split=(512,)),
            ring.request(T_OUT, sector=30, out=OUT_DATA[:1024]),
            ring.request(T_FLUSH),
            ring.request(T_GET_ID, in_split=(20,)),
            ring.request(T_IN, sector=30, in_split=(1024,)),          # reads the OUT back
            ring.request(T_IN, sector=0, in_split=(256, 256), indirect=ring.state.indirect),
            ring.request(99),
            ring.request(T_IN, sector=SECTORS, in_split=(512,))]      # IOERR


@scenario()
def batch_of_8(guest):
    ring = Ring(guest, 32, indirect=True)
    reqs = mixed_batch(ring)
    ring.offer(*(req.head for req in reqs))
    return ring, reqs


@scenario()
def batch_wraps_16_bits(guest):
    """last_avail and used_idx at 0xFFFE: both indexes wrap during the batch."""
    ring = Ring(guest, 4, indirect=True, start=0xFFFE)
    reqs = [ring.request(T_IN, sector=i, in_split=(512,), indirect=True) for i in range(4)]
    ring.offer(*(req.head for req in reqs))
    return ring, reqs


@scenario()
def full_queue(guest):
    ring = Ring(guest, 16, indirect=True)
    reqs = [ring.request(T_GET_ID, in_split=(20,), indirect=True) for _ in range(16)]
    ring.offer(*(req.head for req in reqs))
    return ring, reqs


@scenario()
def same_chain_twice(guest):
    """The same head made available twice in one batch: served twice."""
    ring = Ring(guest, 4)
    req = ring.request(T_IN, sector=8, in_split=(512,))
    ring.offer(req.head, req.head)
    return ring, [req, req]


@scenario()
def chain_as_long_as_queue(guest):
    ring = Ring(guest, 4)
    req = ring.request(T_IN, sector=2, header_split=(8, 8), in_split=(512,))
    assert ring.free == 4
    ring.offer(req.head)
    return ring, [req]


@scenario()
def direct_then_indirect(guest):
    """Spec: the device must handle normal descriptors followed by one INDIRECT."""
    ring = Ring(guest, 16, indirect=True)
    header = ring.put(struct.pack("<IIQ", T_IN, 0, 11))
    data = ring.put(bytes([POISON]) * 1024)
    status = ring.put(bytes([POISON]))
    table, length = ring.table([(data, 512, True), (data + 512, 512, True), (status, 1, True)])
    ring.desc(0, header, 16, F_NEXT, 1)
    ring.desc(1, table, length, F_INDIRECT)
    ring.offer(0)
    return ring, [Req(guest, 0, [(data, 1024)], status)]


@scenario()
def indirect_with_write_flag(guest):
    """Spec: the device ignores WRITE on the descriptor that points at a table."""
    ring = Ring(guest, 16, indirect=True)
    header = ring.put(struct.pack("<IIQ", T_IN, 0, 13))
    data = ring.put(bytes([POISON]) * 512)
    status = ring.put(bytes([POISON]))
    head = ring.indirect([(header, 16, False), (data, 512, True), (status, 1, True)],
                         flags=F_INDIRECT | F_WRITE)
    ring.offer(head)
    return ring, [Req(guest, head, [(data, 512)], status)]


@scenario()
def indirect_1024_entries(guest):
    """The largest indirect table allowed: a 16-piece header, 1007 data pieces, status."""
    ring = Ring(guest, 16, indirect=True)
    header = ring.put(struct.pack("<IIQ", T_IN, 0, 1))
    data = ring.put(bytes([POISON]) * 63 * SECTOR)
    status = ring.put(bytes([POISON]))
    parts = [(header + i, 1, False) for i in range(16)]
    parts += [(data + 32 * i, 32, True) for i in range(1006)] + [(data + 32 * 1006, 64, True)]
    parts.append((status, 1, True))
    assert len(parts) == MAX_INDIRECT
    head = ring.indirect(parts)
    ring.offer(head)
    return ring, [Req(guest, head, [(data, 63 * SECTOR)], status)]


# -- scenarios where the guest's DMA rewrites the rings mid-batch ---------------------------------

@scenario()
def dma_rewrites_descriptors(guest):
    """OUT puts two descriptors on disk, IN reads them over request C's entries:
    C is walked only after B is done, so C becomes a FLUSH."""
    ring = Ring(guest, 16)
    flush_header = ring.put(struct.pack("<IIQ", T_FLUSH, 0, 0))
    flush_status = ring.put(bytes([POISON]))
    k = 8                                            # C's head
    crafted = (struct.pack("<QIHH", flush_header, 16, F_NEXT, k + 1)
               + struct.pack("<QIHH", flush_status, 1, F_WRITE, 0)).ljust(SECTOR, b"\0")
    a = ring.request(T_OUT, sector=20, out=crafted)
    b_header = ring.put(struct.pack("<IIQ", T_IN, 0, 20))
    b_status = ring.put(bytes([POISON]))
    b = ring.chain([(b_header, 16, False), (ring.state.desc + 16 * k, SECTOR, True),
                    (b_status, 1, True)])
    ring.desc(k, ring.put(b"\xFF" * 16), 16, 0)      # C before B: readable only, broken
    ring.offer(a.head, b, k)
    return ring, [a, Req(guest, b, [], b_status), Req(guest, k, [], flush_status)]


@scenario()
def dma_rewrites_avail_ring(guest):
    """An IN overwrites the avail ring slot of the next request with disk data."""
    ring = Ring(guest, 4)
    header = ring.put(struct.pack("<IIQ", T_IN, 0, 0))
    status = ring.put(bytes([POISON]))
    # the data buffer is the avail ring's ring[] itself (4 slots = 8 bytes) and what follows
    head = ring.chain([(header, 16, False), (ring.state.avail + 4, SECTOR, True),
                       (status, 1, True)])
    second = ring.request(T_GET_ID, in_split=(20,))
    ring.offer(head, second.head)
    return ring, []


@scenario()
def dma_over_own_header(guest):
    """The IN data buffer is the request's own header: read first, then overwritten."""
    ring = Ring(guest, 4)
    data = ring.put(struct.pack("<IIQ", T_IN, 0, 3).ljust(SECTOR, b"\0"))
    status = ring.put(bytes([POISON]))
    head = ring.chain([(data, 16, False), (data, SECTOR, True), (status, 1, True)])
    ring.offer(head)
    return ring, [Req(guest, head, [(data, SECTOR)], status)]


@scenario()
def status_on_used_idx(guest):
    """The status byte is used.idx: publishing the used ring overwrites it."""
    ring = Ring(guest, 4)
    header = ring.put(struct.pack("<IIQ", T_FLUSH, 0, 0))
    head = ring.chain([(header, 16, False), (ring.state.used + 2, 1, True)])
    ring.offer(head)
    return ring, []


@scenario()
def get_id_over_next_descriptor(guest):
    """GET_ID writes the serial over the next request's descriptors."""
    ring = Ring(guest, 16)
    header = ring.put(struct.pack("<IIQ", T_GET_ID, 0, 0))
    status = ring.put(bytes([POISON]))
    head = ring.chain([(header, 16, False), (ring.state.desc + 16 * 4, 20, True),
                       (status, 1, True)])
    ring.free = 4
    nxt = ring.request(T_FLUSH)
    ring.offer(head, nxt.head)
    return ring, []


@scenario()
def good_then_broken(guest):
    """A good OUT, then a head past the table: one completed, then a reset."""
    ring = Ring(guest, 4)
    req = ring.request(T_OUT, sector=40, out=OUT_DATA[:512])
    ring.offer(req.head, 4)
    return ring, [req]


# -- hostile rings: the device must ask for a reset, and do nothing else --------------------------

def hostile(build):
    return scenario(hostile=True)(build)


def ring_with(guest, descriptors, size=16, indirect=False, head=0):
    """A ring whose table holds the raw `descriptors` [(address, length, flags, next)]."""
    ring = Ring(guest, size, indirect=indirect)
    for index, (address, length, flags, nxt) in enumerate(descriptors):
        ring.desc(index, address, length, flags, nxt)
    ring.offer(head)
    return ring, []


def header_at(guest, kind=T_IN, sector=0):
    """A request header in RAM (put where no builder puts anything)."""
    address = guest.base + HEAP_AT - 0x1000
    guest.write(address, struct.pack("<IIQ", kind, 0, sector))
    return address


def data_at(guest, offset=0):
    return guest.base + HEAP_AT - 0x800 + offset


@hostile
def head_past_table(guest):
    ring, _ = one(guest, 16, kind=T_FLUSH)
    guest.put_u16(ring.state.avail + 4, 16)
    return ring, []


@hostile
def head_ffff(guest):
    ring, _ = one(guest, 16, kind=T_FLUSH)
    guest.put_u16(ring.state.avail + 4, 0xFFFF)
    return ring, []


@hostile
def next_past_table(guest):
    return ring_with(guest, [(header_at(guest), 16, F_NEXT, 16)])


@hostile
def next_ffff(guest):
    return ring_with(guest, [(header_at(guest), 16, F_NEXT, 0xFFFF)])


@hostile
def self_loop(guest):
    return ring_with(guest, [(header_at(guest), 16, F_NEXT, 0)])


@hostile
def loop_a_b_a(guest):
    return ring_with(guest, [(header_at(guest), 16, F_NEXT, 1),
                             (data_at(guest), 1, F_WRITE | F_NEXT, 0)])


@hostile
def chain_longer_than_queue(guest):
    """Size 4, 0 -> 1 -> 2 -> 3 -> 1 -> ...: five descriptors and more."""
    return ring_with(guest, [(header_at(guest), 16, F_NEXT, 1),
                             (data_at(guest), 1, F_WRITE | F_NEXT, 2),
                             (data_at(guest), 1, F_WRITE | F_NEXT, 3),
                             (data_at(guest), 1, F_WRITE | F_NEXT, 1)], size=4)


@hostile
def chain_over_4gib(guest):
    """A queue of 8192 and 4097 readable 1 MiB buffers (all of RAM): over 4 GiB."""
    ring = Ring(guest, 8192)
    for index in range(4097):
        ring.desc(index, guest.base, guest.size, F_NEXT, index + 1)
    ring.desc(4097, data_at(guest), 1, F_WRITE)
    ring.offer(0)
    return ring, []


@scenario(hostile=True, ram=4 << 20)
def indirect_over_4gib(guest):
    """1024 table entries of 4 MiB each: exactly 4 GiB, one byte more than a u32 holds."""
    ring = Ring(guest, 16, indirect=True)
    parts = [(guest.base, guest.size, False)] * (MAX_INDIRECT - 1)
    parts.append((guest.base, guest.size, True))
    table, length = ring.table(parts)
    ring.desc(0, table, length, F_INDIRECT)
    ring.offer(0)
    return ring, []


for _name, _where in {
    "buffer_below_ram": lambda g: (g.base - SECTOR, SECTOR),
    "buffer_at_zero": lambda g: (0, SECTOR),
    "buffer_straddles_ram_end": lambda g: (g.base + g.size - 256, SECTOR),
    "buffer_just_past_ram_end": lambda g: (g.base + g.size, 1),
    "buffer_length_u32_max": lambda g: (g.base, 0xFFFFFFFF),
    "buffer_end_overflows_64_bits": lambda g: (U64 - 15, 32),
    "buffer_end_wraps_into_ram": lambda g: (U64 - 0xFF, 0x100 + g.base + 0x1000),
    "buffer_zero_length_outside_ram": lambda g: (g.base + g.size + 16, 0),
}.items():
    def _build(guest, _where=_where):
        """An IN whose data buffer is outside RAM."""
        address, length = _where(guest)
        return ring_with(guest, [(header_at(guest), 16, F_NEXT, 1),
                                 (address, length, F_WRITE | F_NEXT, 2),
                                 (data_at(guest), 1, F_WRITE, 0)])
    _build.__name__ = _name
    hostile(_build)


@hostile
def status_just_past_ram_end(guest):
    return ring_with(guest, [(header_at(guest, T_FLUSH), 16, F_NEXT, 1),
                             (guest.base + guest.size, 1, F_WRITE, 0)])


@hostile
def header_outside_ram(guest):
    return ring_with(guest, [(guest.base - 16, 16, F_NEXT, 1),
                             (data_at(guest), 1, F_WRITE, 0)])


def sign_extended(address):
    """What GCC makes of `(uint64_t)pointer` on RV32 for a pointer >= 2 GiB."""
    return address | 0xFFFFFFFF_00000000 if address & 0x8000_0000 else address


@hostile
def header_sign_extended(guest):
    """An RV32 driver's header pointer, sign-extended into the 64-bit addr."""
    return ring_with(guest, [(sign_extended(header_at(guest, T_FLUSH)), 16, F_NEXT, 1),
                             (data_at(guest), 1, F_WRITE, 0)])


@hostile
def status_sign_extended(guest):
    return ring_with(guest, [(header_at(guest, T_FLUSH), 16, F_NEXT, 1),
                             (sign_extended(data_at(guest)), 1, F_WRITE, 0)])


@hostile
def header_address_overflows(guest):
    return ring_with(guest, [(U64 - 7, 16, F_NEXT, 1), (data_at(guest), 1, F_WRITE, 0)])


@hostile
def avail_idx_jumps(guest):
    ring, _ = one(guest, 16, kind=T_FLUSH)
    ring.set_avail_idx(17)
    return ring, []


@hostile
def avail_idx_jumps_far(guest):
    ring, _ = one(guest, 16, kind=T_FLUSH)
    ring.set_avail_idx(0x8000)
    return ring, []


@hostile
def avail_idx_goes_back(guest):
    ring, _ = one(guest, 16, kind=T_FLUSH)
    ring.set_avail_idx(0xFFFF)
    return ring, []


def indirect_ring(guest, table, length, flags=F_INDIRECT, negotiated=True):
    return ring_with(guest, [(table, length, flags, 1), (data_at(guest), 1, F_WRITE, 0)],
                     indirect=negotiated)


def good_table(guest, extra=0, kind=T_FLUSH):
    """A fine indirect table (a FLUSH): (ring-less) address and length."""
    scratch = Ring(guest)
    scratch.heap = guest.base + HEAP_AT + 0x10000      # away from the builder's own heap
    return scratch.table([(header_at(guest, kind), 16, False), (data_at(guest), 1, True)],
                         extra=extra)


@hostile
def indirect_not_negotiated(guest):
    return indirect_ring(guest, *good_table(guest), negotiated=False)


@hostile
def indirect_misaligned_8(guest):
    table, length = good_table(guest, extra=1)
    guest.write(table + 8, guest.read(table, 32))
    return indirect_ring(guest, table + 8, 32)


@hostile
def indirect_misaligned_1(guest):
    table, length = good_table(guest, extra=1)
    guest.write(table + 1, guest.read(table, 32))
    return indirect_ring(guest, table + 1, 32)


@hostile
def indirect_nested(guest):
    inner, inner_length = good_table(guest)
    scratch = Ring(guest)
    scratch.heap = guest.base + HEAP_AT + 0x20000
    outer = scratch.alloc(16)
    guest.write(outer, struct.pack("<QIHH", inner, inner_length, F_INDIRECT, 0))
    return indirect_ring(guest, outer, 16)


@hostile
def indirect_empty(guest):
    table, _ = good_table(guest)
    return indirect_ring(guest, table, 0)


@hostile
def indirect_length_24(guest):
    table, _ = good_table(guest)
    return indirect_ring(guest, table, 24)


@hostile
def indirect_length_33(guest):
    table, _ = good_table(guest, extra=1)
    return indirect_ring(guest, table, 33)


@hostile
def indirect_oversized(guest):
    """1025 entries (all in RAM; the chain itself uses two)."""
    table, length = good_table(guest, extra=MAX_INDIRECT - 1)
    assert length == 16 * (MAX_INDIRECT + 1)
    return indirect_ring(guest, table, length)


@hostile
def indirect_length_u32_max(guest):
    table, _ = good_table(guest)
    return indirect_ring(guest, table, 0xFFFFFFF0)


@hostile
def indirect_and_next(guest):
    return indirect_ring(guest, *good_table(guest), flags=F_INDIRECT | F_NEXT)


@hostile
def indirect_table_outside_ram(guest):
    return indirect_ring(guest, guest.base + guest.size, 32)


@hostile
def indirect_table_straddles_ram_end(guest):
    return indirect_ring(guest, guest.base + guest.size - 16, 32)


@hostile
def indirect_table_address_overflows(guest):
    return indirect_ring(guest, U64 - 15, 32)


@hostile
def indirect_next_past_table(guest):
    table, length = good_table(guest)
    guest.write(table + 14, struct.pack("<H", 2))          # entry 0's next: 2 of 2
    return indirect_ring(guest, table, length)


@hostile
def indirect_loop(guest):
    table, length = good_table(guest)
    guest.write(table + 16, struct.pack("<QIHH", data_at(guest), 1, F_WRITE | F_NEXT, 0))
    return indirect_ring(guest, table, length)


@hostile
def indirect_buffer_outside_ram(guest):
    table, length = good_table(guest)
    guest.write(table + 16, struct.pack("<QIHH", guest.base + guest.size, 1, F_WRITE, 0))
    return indirect_ring(guest, table, length)


@hostile
def no_status_last_readable(guest):
    return ring_with(guest, [(header_at(guest, T_FLUSH), 16, 0, 0)])


@hostile
def no_status_in_data_readable_last(guest):
    return ring_with(guest, [(header_at(guest), 16, F_NEXT, 1),
                             (data_at(guest), SECTOR, F_WRITE | F_NEXT, 2),
                             (data_at(guest, SECTOR), 1, 0, 0)])


@hostile
def no_status_zero_length_writable(guest):
    return ring_with(guest, [(header_at(guest, T_FLUSH), 16, F_NEXT, 1),
                             (data_at(guest), 0, F_WRITE, 0)])


@hostile
def no_status_zero_length_writables(guest):
    return ring_with(guest, [(header_at(guest, T_FLUSH), 16, F_NEXT, 1),
                             (data_at(guest), 0, F_WRITE | F_NEXT, 2),
                             (data_at(guest), 0, F_WRITE, 0)])


@hostile
def readable_after_writable(guest):
    return ring_with(guest, [(header_at(guest, T_FLUSH), 16, F_NEXT, 1),
                             (data_at(guest), 1, F_WRITE | F_NEXT, 2),
                             (data_at(guest, 1), 16, 0, 0)])


@hostile
def indirect_table_without_status(guest):
    """An indirect table holding only a device-readable header: no status."""
    scratch = Ring(guest)
    scratch.heap = guest.base + HEAP_AT + 0x10000
    table, length = scratch.table([(header_at(guest, T_FLUSH), 16, False)])
    return ring_with(guest, [(table, length, F_INDIRECT, 0)], indirect=True)


# == behaviour ====================================================================================

def sectors(first, count):
    return DISK[first * SECTOR:(first + count) * SECTOR]


def assert_ok_in(ring, req, result, first, count, image):
    n = count * SECTOR
    assert req.status() == S_OK
    assert req.data_bytes() == sectors(first, count)
    assert ring.used(0) == (req.head, n + 1)
    assert ring.used_idx() == 1
    assert (result.completed, result.moved, result.needs_reset) == (1, n, False)
    assert disk_bytes(image) == DISK


def test_in_reads_sectors(twin, disk):
    ring, (req,) = build("in_one")
    result = run(twin, ring, disk)
    assert_ok_in(ring, req, result, 3, 2, disk)
    assert result.notify is True
    assert (ring.state.last_avail, ring.state.used_idx) == (1, 1)


@pytest.mark.parametrize("name, first, count", [
    ("in_split", 5, 4), ("in_header_in_three", 9, 1), ("in_last_sectors", 62, 2),
    ("in_status_shares_buffer", 1, 1), ("trailing_zero_length_writable", 6, 1),
    ("in_indirect", 7, 2), ("direct_then_indirect", 11, 2), ("indirect_with_write_flag", 13, 1),
    ("indirect_1024_entries", 1, 63), ("chain_as_long_as_queue", 2, 1),
])
def test_in_reads_sectors_however_split(twin, disk, name, first, count):
    ring, (req,) = build(name)
    assert_ok_in(ring, req, run(twin, ring, disk), first, count, disk)


def test_in_with_no_data_is_ok(twin, disk):
    ring, (req,) = build("in_no_data")
    result = run(twin, ring, disk)
    assert req.status() == S_OK and ring.used(0) == (req.head, 1)
    assert (result.completed, result.moved) == (1, 0)


def test_in_data_over_its_own_header(twin, disk):
    ring, (req,) = build("dma_over_own_header")
    run(twin, ring, disk)
    assert req.status() == S_OK and req.data_bytes() == sectors(3, 1)


@pytest.mark.parametrize("name, first, data", [
    ("out_one", 10, OUT_DATA[:1024]), ("out_last_sector", 63, OUT_DATA[:512]),
    ("out_indirect", 20, OUT_DATA),
])
def test_out_writes_the_file(twin, disk, name, first, data):
    ring, (req,) = build(name)
    before = disk_bytes(disk)
    result = run(twin, ring, disk)
    assert req.status() == S_OK
    assert ring.used(0) == (req.head, 1) and ring.used_idx() == 1
    assert (result.completed, result.moved, result.notify, result.needs_reset) == \
        (1, len(data), True, False)
    expected = before[:first * SECTOR] + data + before[first * SECTOR + len(data):]
    assert disk_bytes(disk) == expected


@pytest.mark.parametrize("name", ["flush", "flush_with_sector"])
def test_flush(twin, disk, name):
    ring, (req,) = build(name)
    result = run(twin, ring, disk)
    assert req.status() == S_OK and ring.used(0) == (req.head, 1)
    assert (result.completed, result.moved, result.needs_reset) == (1, 0, False)
    assert disk_bytes(disk) == DISK


@pytest.mark.parametrize("name, room", [
    ("get_id_20", 20), ("get_id_32", 32), ("get_id_7", 7), ("get_id_split", 20),
    ("get_id_no_buffer", 0), ("get_id_indirect", 20),
])
def test_get_id(twin, disk, name, room):
    ring, (req,) = build(name)
    result = run(twin, ring, disk)
    written = min(room, ID_BYTES)
    serial = disk.serial.ljust(ID_BYTES, b"\0")[:written]
    assert req.status() == S_OK
    assert req.data_bytes() == serial + bytes([POISON]) * (room - written)
    assert ring.used(0) == (req.head, written + 1)
    assert (result.completed, result.moved) == (1, 0)


@pytest.mark.parametrize("name", ["unsupported_2", "unsupported_discard", "unsupported_ffffffff"])
def test_unknown_type_is_unsupp(twin, disk, name):
    ring, (req,) = build(name)
    result = run(twin, ring, disk)
    assert req.status() == S_UNSUPP
    assert ring.used(0) == (req.head, 1)
    assert all(b == POISON for b in req.data_bytes())
    assert (result.completed, result.moved, result.needs_reset) == (1, 0, False)
    assert disk_bytes(disk) == DISK


IOERR = ["in_past_end", "in_at_end", "in_sector_wraps", "in_sector_wraps_2",
         "in_sector_times_512_wraps", "out_past_end", "out_sector_wraps", "in_not_multiple",
         "in_not_multiple_split", "out_not_multiple", "short_header_12", "short_header_15_split",
         "header_writable", "in_data_readable", "in_with_extra_readable",
         "out_with_writable_data", "out_read_only", "in_last_u64_sector_data_above_status",
         "out_last_u64_sector_data_above_status"]


@pytest.mark.parametrize("name", IOERR)
def test_bad_request_is_ioerr(twin, tmp_path, name):
    builder = SCENARIOS[name]
    image = make_image(tmp_path / "disk.img", read_only=builder.read_only)
    try:
        ring, (req,) = build(name)
        result = run(twin, ring, image)
        assert req.status() == S_IOERR
        assert ring.used(0) == (req.head, 1) and ring.used_idx() == 1
        assert all(b == POISON for b in req.data_bytes())      # no data reached the guest
        assert (result.completed, result.moved, result.notify, result.needs_reset) == \
            (1, 0, True, False)
        assert disk_bytes(image) == DISK
    finally:
        image.close()


def test_in_from_read_only_image_works(twin, ro_disk):
    ring, (req,) = build("in_read_only")
    assert_ok_in(ring, req, run(twin, ring, ro_disk), 4, 1, ro_disk)


@pytest.mark.parametrize("name, expected", [
    ("in_zero_length_buffer_first", lambda image: sectors(2, 1)),
    ("get_id_zero_length_buffer_first", lambda image: image.serial.ljust(ID_BYTES, b"\0")),
])
def test_zero_length_data_buffer_is_skipped(twin, disk, name, expected):
    """A zero-length descriptor before the data (the split does not matter, spec
    "Message Framing"): the data must still land in the next buffer.  (virtio_blk's
    scatter() used to stop at it and report OK with the data missing.)"""
    ring, (req,) = build(name)
    run(twin, ring, disk)
    assert req.status() == S_OK
    assert ring.used(0)[1] == len(expected(disk)) + 1
    assert req.data_bytes() == expected(disk)


# -- batches --------------------------------------------------------------------------------------

def test_batch_completes_every_request(twin, disk):
    ring, reqs = build("batch_of_8")
    result = run(twin, ring, disk)
    assert (result.completed, result.notify, result.needs_reset) == (8, True, False)
    assert result.moved == 512 + 1024 + 1024 + 512
    assert ring.used_idx() == 8 and (ring.state.last_avail, ring.state.used_idx) == (8, 8)
    statuses = [req.status() for req in reqs]
    assert statuses == [S_OK] * 6 + [S_UNSUPP, S_IOERR]
    lengths = [513, 1, 1, 21, 1025, 513, 1, 1]
    assert [ring.used(i) for i in range(8)] == [(r.head, n) for r, n in zip(reqs, lengths)]
    assert reqs[0].data_bytes() == sectors(1, 1)
    assert reqs[4].data_bytes() == OUT_DATA[:1024]          # the OUT before it, read back
    assert reqs[5].data_bytes() == sectors(0, 1)
    assert disk_bytes(disk)[30 * SECTOR:32 * SECTOR] == OUT_DATA[:1024]


def test_batch_wraps_the_16_bit_indexes(twin, disk):
    ring, reqs = build("batch_wraps_16_bits")
    result = run(twin, ring, disk)
    assert (result.completed, result.notify, result.needs_reset) == (4, True, False)
    assert (ring.state.last_avail, ring.state.used_idx) == (2, 2)
    assert ring.used_idx() == 2
    assert [ring.used(0xFFFE + i) for i in range(4)] == [(r.head, 513) for r in reqs]
    assert [r.data_bytes() for r in reqs] == [sectors(i, 1) for i in range(4)]


def test_full_queue(twin, disk):
    ring, reqs = build("full_queue")
    result = run(twin, ring, disk)
    assert result.completed == 16 and ring.used_idx() == 16
    assert all(req.status() == S_OK for req in reqs)


def test_same_chain_twice(twin, disk):
    ring, (req, _) = build("same_chain_twice")
    result = run(twin, ring, disk)
    assert result.completed == 2
    assert [ring.used(i) for i in range(2)] == [(req.head, 513)] * 2


def test_nothing_available(twin, disk):
    ring = Ring(Guest())
    before = ring.guest.snapshot()
    assert run(twin, ring, disk) == (0, 0, False, False, None, None, None)
    assert ring.guest.snapshot() == before
    assert (ring.state.last_avail, ring.state.used_idx) == (0, 0)


def test_a_second_call_finds_nothing_more(twin, disk):
    ring, reqs = build("batch_of_8")
    run(twin, ring, disk)
    assert run(twin, ring, disk) == (0, 0, False, False, None, None, None)
    more = ring.request(T_FLUSH)
    ring.offer(more.head)
    assert run(twin, ring, disk)[:4] == (1, 0, True, False)
    assert ring.used(8) == (more.head, 1) and ring.used_idx() == 9


def test_dma_rewrites_descriptors_before_the_walk(twin, disk):
    ring, (a, b, c) = build("dma_rewrites_descriptors")
    result = run(twin, ring, disk)
    assert (result.completed, result.needs_reset) == (3, False)
    assert [a.status(), b.status(), c.status()] == [S_OK, S_OK, S_OK]
    assert ring.used(2) == (c.head, 1)


def short_read_ring():
    """An IN of sectors 30..33 whose data buffers lie below the used ring, away from
    everything else the device writes (the status byte and used entries)."""
    guest = Guest()
    ring = Ring(guest, 16)
    header = ring.put(struct.pack("<IIQ", T_IN, 0, 30))
    data = guest.base + 0x10000                       # between the descriptors and avail
    guest.write(data, bytes([POISON]) * 2048)
    status = ring.put(bytes([POISON]))
    head = ring.chain([(header, 16, False), (data, 1024, True), (data + 1024, 1024, True),
                       (status, 1, True)])
    ring.offer(head)
    return ring, Req(guest, head, [(data, 2048)], status)


def test_failed_read_is_ioerr_and_in_the_dma_range(twin, disk):
    """The image shrank under the device (truncated by the host): a short read.
    IOERR; whatever part of the data reached guest RAM is inside (low, high)."""
    os.truncate(disk.path, 32 * SECTOR)
    ring, req = short_read_ring()
    result = run(twin, ring, disk)              # run() checks (low, high) covers the changes
    assert req.status() == S_IOERR and ring.used(0) == (req.head, 1)
    assert (result.completed, result.moved, result.needs_reset) == (1, 0, False)


def test_good_then_broken(twin, disk):
    """The first request is done (on disk); the second breaks the ring."""
    ring, (req,) = build("good_then_broken")
    result = run(twin, ring, disk)
    assert (result.completed, result.moved, result.notify, result.needs_reset) == \
        (1, 512, False, True)
    assert req.status() == S_OK
    assert disk_bytes(disk)[40 * SECTOR:41 * SECTOR] == OUT_DATA[:512]


# -- interrupt suppression ------------------------------------------------------------------------

def three_flushes(event_idx=False, start=0):
    ring = Ring(Guest(), 16, event_idx=event_idx, start=start)
    reqs = [ring.request(T_FLUSH) for _ in range(3)]
    ring.offer(*(req.head for req in reqs))
    return ring


@pytest.mark.parametrize("flags, notify", [(0, True), (AVAIL_F_NO_INTERRUPT, False)])
def test_no_interrupt_flag(twin, disk, flags, notify):
    ring = three_flushes()
    ring.set_avail_flags(flags)
    avail_event = ring.avail_event()
    result = run(twin, ring, disk)
    assert (result.completed, result.notify) == (3, notify)
    assert ring.used_idx() == 3
    assert ring.avail_event() == avail_event          # no event_idx: not written


def need_event(event, new, old):
    return (new - event - 1) & 0xFFFF < (new - old) & 0xFFFF


@pytest.mark.parametrize("start", [0, 0xFFFE])
@pytest.mark.parametrize("delta", [-2, -1, 0, 1, 2, 3, 4, 100, 0x8000])
@pytest.mark.parametrize("flags", [0, AVAIL_F_NO_INTERRUPT])
def test_event_idx(twin, disk, start, delta, flags):
    """used_event decides (avail.flags is ignored), and the device writes avail_event."""
    ring = three_flushes(event_idx=True, start=start)
    used_event = (start + delta) & 0xFFFF
    ring.set_used_event(used_event)
    ring.set_avail_flags(flags)
    result = run(twin, ring, disk)
    new = (start + 3) & 0xFFFF
    assert result.completed == 3
    assert result.notify is need_event(used_event, new, start)
    assert result.notify is (0 <= delta < 3)
    assert ring.avail_event() == new == ring.state.last_avail
    assert ring.used_idx() == new


def test_event_idx_write_is_in_the_dma_range(twin, disk):
    ring = three_flushes(event_idx=True)
    result = run(twin, ring, disk)
    avail_event = ring.state.used + 4 + 8 * ring.size
    assert result.low <= avail_event and avail_event + 2 <= result.high


# -- hostile rings --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_ring_asks_for_reset(twin, disk, name):
    ring, _ = build(name)
    before = ring.guest.snapshot()
    result = run(twin, ring, disk)
    assert result[:6] == (0, 0, False, True, None, None)
    assert ring.guest.snapshot() == before                 # not even a status byte
    assert disk_bytes(disk) == DISK


# What the device says about a refused ring: (reason, head, descriptor,
# indirect, address, length), the reasons numbered as in virtqueue.py.
OUTSIDE, JUMP, PAST, TOO_LONG, NO_INDIRECT, WITH_NEXT, BAD_TABLE, OVER_4G, NO_STATUS = range(1, 10)
H = RAM_BASE + HEAP_AT
FAULTS = {
    "head_past_table": (PAST, 16, 16, False, None, 16),
    "next_ffff": (PAST, 0, 0xFFFF, False, None, 16),
    "self_loop": (TOO_LONG, 0, 0, False, None, None),
    "header_outside_ram": (OUTSIDE, 0, 0, False, RAM_BASE - 16, 16),
    "header_sign_extended": (OUTSIDE, 0, 0, False, 0xFFFF_FFFF_8000_0000 + HEAP_AT - 0x1000, 16),
    "status_sign_extended": (OUTSIDE, 0, 1, False, 0xFFFF_FFFF_8000_0000 + HEAP_AT - 0x800, 1),
    "avail_idx_jumps": (JUMP, None, None, False, RAM_BASE + AVAIL_AT + 2, 17),
    "indirect_not_negotiated": (NO_INDIRECT, 0, 0, False, None, None),
    "indirect_and_next": (WITH_NEXT, 0, 0, False, None, None),
    "indirect_empty": (BAD_TABLE, 0, 0, False, H + 0x10000, 0),
    "chain_over_4gib": (OVER_4G, 0, 4095, False, None, None),
    "no_status_last_readable": (NO_STATUS, 0, None, False, None, None),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_a_refused_ring_says_where(twin, disk, name):
    ring, _ = build(name)
    assert tuple(run(twin, ring, disk).fault) == FAULTS[name]


def test_the_fault_line_names_the_descriptor_and_hints_at_sign_extension(twin, disk):
    ring, _ = build("status_sign_extended")
    line = describe_fault(run(twin, ring, disk).fault)
    assert line == ("request at head 0, descriptor 1 of the descriptor table: "
                    f"{0xFFFF_FFFF_8000_0000 + HEAP_AT - 0x800:#x}+1 is outside guest RAM "
                    f"(0x{RAM_BASE + HEAP_AT - 0x800:x} sign-extended to 64 bits? "
                    "cast the pointer through uint32_t)")


# == the twins agree ==============================================================================

def outcome(twin, builder_guest, state, read_only, serial, path):
    """Run a twin on copies: (result, RAM with guards, QueueState fields, image bytes)."""
    guest = builder_guest.clone()
    state = copy.copy(state)
    image = make_image(path, read_only=read_only)
    image.serial = serial
    try:
        try:
            result = tuple((type(v).__name__, v) for v in invoke(twin, guest, state, image))
        except AssertionError:
            raise
        except Exception as error:                       # noqa: BLE001 -- report, then compare
            result = ("raised", type(error).__name__, str(error))
        return result, bytes(guest.whole), vars(state), disk_bytes(image)
    finally:
        image.close()


def compare(python, cython):
    names = ("return value", "guest RAM", "QueueState", "image file")
    for name, a, b in zip(names, python, cython):
        if a != b:
            if isinstance(a, bytes):
                first, end = changed_span(a, b)
                detail = f"bytes {first:#x}..{end:#x} (guard {GUARD:#x} first)"
            else:
                detail = f"python {a!r}\ncython {b!r}"
            pytest.fail(f"the twins disagree on the {name}: {detail}")


@needs_cython
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_twins_agree(tmp_path, name):
    builder = SCENARIOS[name]
    guest = Guest(builder.ram)
    ring, _ = builder(guest)
    serial = b"minivm-twin-serial"
    python = outcome(PYTHON_TWIN, guest, ring.state, builder.read_only, serial, tmp_path / "p")
    cython = outcome(CYTHON_TWIN, guest, ring.state, builder.read_only, serial, tmp_path / "c")
    compare(python, cython)


@needs_cython
@pytest.mark.parametrize("start", [0, 0xFFFE])
@pytest.mark.parametrize("delta", [-1, 0, 2, 3])
@pytest.mark.parametrize("flags", [0, AVAIL_F_NO_INTERRUPT])
@pytest.mark.parametrize("event_idx", [False, True])
def test_twins_agree_on_interrupts(tmp_path, start, delta, flags, event_idx):
    ring = three_flushes(event_idx=event_idx, start=start)
    ring.set_used_event((start + delta) & 0xFFFF)
    ring.set_avail_flags(flags)
    args = (ring.guest, ring.state, False, b"serial")
    compare(outcome(PYTHON_TWIN, *args, tmp_path / "p"),
            outcome(CYTHON_TWIN, *args, tmp_path / "c"))


@needs_cython
def test_twins_agree_after_a_short_read(tmp_path):
    ring, _ = short_read_ring()
    runs = []
    for twin, path in ((PYTHON_TWIN, tmp_path / "p"), (CYTHON_TWIN, tmp_path / "c")):
        image = make_image(path)
        os.truncate(path, 32 * SECTOR)
        guest, state = ring.guest.clone(), copy.copy(ring.state)
        try:
            result = tuple((type(v).__name__, v) for v in invoke(twin, guest, state, image))
        finally:
            image.close()
        runs.append((result, bytes(guest.whole), vars(state)))
    compare(*runs)


# -- outside the transport's guarantees -----------------------------------------------------------
# VirtioMmio._queue_problem accepts a queue only if its size is a power of two
# and its three rings lie wholly in RAM; process_block_queue is never called
# otherwise.  Called directly, it must still raise nothing and write nothing
# outside RAM.

def placed_ring(guest, desc, avail, used, event_idx=False, size=4):
    """A FLUSH at head 0 on rings at the given guest addresses (written where in RAM)."""
    def put(address, data):
        if guest.base <= address and address + len(data) <= guest.base + guest.size:
            guest.write(address, data)
    header = guest.base + HEAP_AT
    guest.write(header, struct.pack("<IIQ", T_FLUSH, 0, 0))
    put(desc, struct.pack("<QIHH", header, 16, F_NEXT, 1))
    put(desc + 16, struct.pack("<QIHH", header + 16, 1, F_WRITE, 0))
    put(avail + 2, struct.pack("<H", 1))
    put(avail + 4, struct.pack("<H", 0))
    put(used + 2, struct.pack("<H", 0))
    return QueueState(size, desc, avail, used, event_idx=event_idx)


END = RAM_BASE + RAM_SIZE
PLACEMENTS = {     # name: (desc, avail, used, event_idx)
    "used_idx_below_ram": (RAM_BASE + 0x1000, RAM_BASE + 0x2000, RAM_BASE - 4, False),
    "avail_flags_below_ram": (RAM_BASE + 0x1000, RAM_BASE - 2, RAM_BASE + 0x3000, False),
    "used_event_past_ram": (RAM_BASE + 0x1000, END - 12, RAM_BASE + 0x3000, True),
    "avail_event_past_ram": (RAM_BASE + 0x1000, RAM_BASE + 0x2000, END - 36, True),
    "avail_idx_below_ram": (RAM_BASE + 0x1000, RAM_BASE - 4, RAM_BASE + 0x3000, False),
    "desc_table_past_ram": (END - 16, RAM_BASE + 0x2000, RAM_BASE + 0x3000, False),
    "used_ring_past_ram": (RAM_BASE + 0x1000, RAM_BASE + 0x2000, END - 8, False),
}


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_rings_partly_outside_ram(twin, disk, placement):
    """No exception, no write outside RAM, (low, high) covers what was written,
    and the ring is reported broken (a reset)."""
    desc, avail, used, event_idx = PLACEMENTS[placement]
    guest = Guest()
    result = call(twin, guest, placed_ring(guest, desc, avail, used, event_idx), disk)
    assert (result.notify, result.needs_reset) == (False, True)


@needs_cython
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_twins_agree_on_rings_partly_outside_ram(tmp_path, placement):
    desc, avail, used, event_idx = PLACEMENTS[placement]
    guest = Guest()
    args = (guest, placed_ring(guest, desc, avail, used, event_idx), False, b"serial")
    compare(outcome(PYTHON_TWIN, *args, tmp_path / "p"),
            outcome(CYTHON_TWIN, *args, tmp_path / "c"))


@needs_cython
def test_twins_agree_on_a_zero_size_queue(tmp_path):
    """Size 0 with nothing available: the Python twin has nothing to do."""
    guest = Guest()
    state = QueueState(0, RAM_BASE + DESC_AT, RAM_BASE + AVAIL_AT, RAM_BASE + USED_AT)
    args = (guest, state, False, b"serial")
    compare(outcome(PYTHON_TWIN, *args, tmp_path / "p"),
            outcome(CYTHON_TWIN, *args, tmp_path / "c"))


# == random rings =================================================================================
# A 64 KiB RAM: descriptors at 0, the avail ring at 0x200, the used ring at
# 0x400, two indirect tables of 16 entries at 0x800 and 0x900, 16 request
# headers at 0x1000 (32 bytes apart), random data from 0x2000.  Well-formed
# requests are laid over random descriptors, then a few fields are mutated.

FUZZ_RAM = 0x10000
Z_DESC, Z_AVAIL, Z_USED, Z_HEADERS, Z_DATA = 0x0, 0x200, 0x400, 0x1000, 0x2000
Z_TABLES = (0x800, 0x900)

u16s = st.integers(0, 0xFFFF)


def mostly(common, rare, one_in=8):
    """`common`, and `rare` about once in `one_in` draws."""
    return st.integers(0, one_in - 1).flatmap(lambda k: rare if k == 0 else common)


def fuzz_addresses():
    b = RAM_BASE
    return st.one_of(
        st.integers(0, 15).map(lambda k: b + Z_HEADERS + 32 * k),
        st.integers(Z_DATA, FUZZ_RAM - 1).map(lambda o: b + o),
        st.integers(0, Z_DATA - 1).map(lambda o: b + o),                # the rings: aliasing
        st.sampled_from([t + d for t in Z_TABLES for d in (0, 8, 1)]).map(lambda o: b + o),
        st.integers(-1024, 1024).map(lambda d: b + FUZZ_RAM + d),      # the end of RAM
        st.integers(1, 1024).map(lambda d: b - d),                     # just below RAM
        st.integers(1, 4096).map(lambda d: (1 << 64) - d),             # end overflows
        st.integers(0, U64))


fuzz_lengths = st.one_of(
    st.integers(0, 40), st.sampled_from([512, 1024, 1536, 511, 513, 16 * 1025]),
    st.integers(1, 16).map(lambda n: 16 * n), st.integers(0, 0xFFFFFFFF),
    st.sampled_from([0xFFFFFFFF, FUZZ_RAM, FUZZ_RAM + 1]))
fuzz_flags = mostly(st.integers(0, 7), u16s)


def fuzz_descriptor(size):
    return st.tuples(fuzz_addresses(), fuzz_lengths, fuzz_flags,
                     mostly(st.integers(0, size + 1), u16s))


fuzz_kinds = st.one_of(st.sampled_from([T_IN, T_OUT, T_FLUSH, T_GET_ID, 2, 11]),
                       st.integers(0, 0xFFFFFFFF))
fuzz_sectors = st.one_of(st.integers(0, SECTORS + 2),
                         st.sampled_from([U64, U64 - 1, 1 << 55, (1 << 55) + 1]),
                         st.integers(0, U64))
good_requests = st.fixed_dictionaries({
    "kind": st.sampled_from([T_IN, T_IN, T_OUT, T_OUT, T_FLUSH, T_GET_ID, 2]),
    "sector": mostly(st.integers(0, SECTORS + 1), st.sampled_from([U64, U64 - 1, 1 << 55])),
    "header_split": mostly(st.sampled_from([(16,), (8, 8), (16, 0)]),
                           st.sampled_from([(4, 12), (12,)]), one_in=5),
    "data": mostly(st.sampled_from([512, 1024, 1536, 0]), st.sampled_from([20, 100, 513]),
                   one_in=4),
    "pieces": st.integers(1, 3),
    "zero_piece": st.booleans(),          # a zero-length descriptor before the data
    "offsets": st.lists(st.integers(Z_DATA, FUZZ_RAM - 2048), min_size=4, max_size=4),
    "status": mostly(st.just(True), st.just(False)),
    "indirect": st.booleans(),
})


@st.composite
def fuzz_rings(draw):
    size = draw(st.sampled_from([1, 2, 4, 8, 8, 16, 16]))
    spec = {
        "size": size,
        "event_idx": draw(st.booleans()),
        "indirect": draw(st.booleans()),
        "last_avail": draw(st.one_of(st.sampled_from([0, 0xFFFE, 0xFFFF]), u16s)),
        "used_idx": draw(st.one_of(st.sampled_from([0, 0xFFFF]), u16s)),
        "avail_flags": draw(mostly(st.just(0), st.sampled_from([1, 0xFFFF]), one_in=3)),
        "used_event": draw(mostly(st.integers(0, size), u16s, one_in=4)),   # from used_idx
        "seed": draw(st.integers(0, 2**32 - 1)),
        "read_only": draw(st.booleans()),
        "headers": draw(st.lists(st.tuples(fuzz_kinds, fuzz_sectors), min_size=16, max_size=16)),
        "desc": draw(st.lists(fuzz_descriptor(size), min_size=size, max_size=size)),
        "tables": [draw(st.lists(fuzz_descriptor(16), min_size=16, max_size=16)) for _ in Z_TABLES],
        "goods": draw(mostly(st.lists(good_requests, min_size=1, max_size=size),
                             st.just([]), one_in=6)),
        "mutations": draw(mostly(st.just([]), st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 15), st.integers(0, 3),
                      st.integers(0, U64)), min_size=1, max_size=3), one_in=3)),
        "heads": draw(st.lists(st.one_of(st.integers(0, size + 1), u16s), min_size=size,
                               max_size=size)),
    }
    # how far avail.idx is ahead: the well-formed requests laid out, or any number
    spec["pending"] = draw(mostly(st.just("laid out"), st.one_of(
        st.integers(0, size), st.sampled_from([size + 1, 0x8000, 0xFFFF])), one_in=3))
    return spec


def lay_out(spec):
    """The Guest, QueueState and number of requests made available a fuzz spec describes."""
    guest = Guest(FUZZ_RAM)
    b, size = RAM_BASE, spec["size"]
    guest.write(b + Z_DATA, random.Random(spec["seed"]).randbytes(FUZZ_RAM - Z_DATA))
    headers = list(spec["headers"])
    desc = [list(d) for d in spec["desc"]]
    tables = [[list(d) for d in table] for table in spec["tables"]]
    free, tables_used, heads = 0, 0, []
    for k, good in enumerate(spec["goods"]):
        kind = good["kind"]
        headers[k] = (kind, good["sector"])
        parts, at = [], b + Z_HEADERS + 32 * k
        for n in good["header_split"]:
            parts.append((at, n, 0))
            at += n
        if kind in (T_IN, T_OUT, T_GET_ID) and good["data"]:
            flags = 0 if kind == T_OUT else F_WRITE
            piece = -(-good["data"] // good["pieces"])
            left = good["data"]
            if good["zero_piece"]:
                parts.append((b + good["offsets"][0], 0, flags))
            for offset in good["offsets"][:good["pieces"]]:
                if left > 0:
                    parts.append((b + offset, min(piece, left), flags))
                    left -= piece
        if good["status"]:
            parts.append((b + good["offsets"][3] + 2047, 1, F_WRITE))
        chain = [[a, n, f | F_NEXT, i + 1] for i, (a, n, f) in enumerate(parts)]
        chain[-1][2] &= ~F_NEXT
        if good["indirect"] and spec["indirect"] and tables_used < len(Z_TABLES) \
                and len(chain) <= 16:
            if free >= size:
                break
            tables[tables_used][:len(chain)] = chain
            desc[free] = [b + Z_TABLES[tables_used], 16 * len(chain), F_INDIRECT, 0]
            heads.append(free)
            free, tables_used = free + 1, tables_used + 1
        else:
            if free + len(chain) > size:
                break
            for i, d in enumerate(chain):
                d[3] += free
                desc[free + i] = d
            heads.append(free)
            free += len(chain)
    for where, index, field, value in spec["mutations"]:
        target = desc if where == 0 else tables[where - 1]
        entry = target[index % len(target)]
        entry[field] = value & (U64, 0xFFFFFFFF, 0xFFFF, 0xFFFF)[field]
    for k, (kind, sector) in enumerate(headers):
        guest.write(b + Z_HEADERS + 32 * k, struct.pack("<IIQ", kind, 0, sector))
    for base, entries in [(Z_DESC, desc)] + list(zip(Z_TABLES, tables)):
        for i, (address, length, flags, nxt) in enumerate(entries):
            guest.write(b + base + 16 * i, struct.pack("<QIHH", address, length, flags, nxt))
    state = QueueState(size, b + Z_DESC, b + Z_AVAIL, b + Z_USED,
                       event_idx=spec["event_idx"], indirect=spec["indirect"])
    state.last_avail, state.used_idx = spec["last_avail"], spec["used_idx"]
    ring = (heads + list(spec["heads"]))[:size]
    for i, head in enumerate(ring):
        guest.put_u16(b + Z_AVAIL + 4 + 2 * ((state.last_avail + i) % size), head)
    guest.put_u16(b + Z_AVAIL, spec["avail_flags"])
    pending = len(heads) if spec["pending"] == "laid out" else spec["pending"]
    guest.put_u16(b + Z_AVAIL + 2, state.last_avail + pending)
    guest.put_u16(b + Z_AVAIL + 4 + 2 * size, state.used_idx + spec["used_event"])
    guest.put_u16(b + Z_USED + 2, state.used_idx)
    return guest, state, pending


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# How many examples, and whether they are random, comes from the hypothesis
# profile (tests/conftest.py): derandomized by default, HYPOTHESIS_PROFILE=fuzz
# for a long run.
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.mark.fuzz
@FUZZ
@given(spec=fuzz_rings())
def test_random_rings_on_one_twin(twin, fuzz_dir, spec):
    """No exception, no write outside RAM, (low, high) covers every write; and
    unless the ring is broken, every available request is completed and published."""
    guest, state, pending = lay_out(spec)
    image = make_image(fuzz_dir / "one.img", read_only=spec["read_only"])
    try:
        last_avail = state.last_avail
        result = call(twin, guest, state, image)
        if not result.needs_reset:
            assert result.completed == pending
            assert state.last_avail == (last_avail + pending) & 0xFFFF
            if pending:
                assert guest.u16(RAM_BASE + Z_USED + 2) == state.used_idx
        else:
            assert result.notify is False
        if spec["read_only"]:
            assert disk_bytes(image) == DISK
    finally:
        image.close()


@needs_cython
@pytest.mark.fuzz
@FUZZ
@given(spec=fuzz_rings())
def test_random_rings_twins_agree(fuzz_dir, spec):
    guest, state, _ = lay_out(spec)
    args = (guest, state, spec["read_only"], b"fuzz-serial")
    compare(outcome(PYTHON_TWIN, *args, fuzz_dir / "p.img"),
            outcome(CYTHON_TWIN, *args, fuzz_dir / "c.img"))
