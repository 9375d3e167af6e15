"""The split virtqueue, device side: your walker (OASIS virtio 1.x, "Split Virtqueues").

The driver (the guest) and the device (the host) share three rings in guest RAM:

    descriptor table   size x 16 bytes: {u64 addr, u32 len, u16 flags, u16 next}
    available ring     {u16 flags, u16 idx, u16 ring[size], u16 used_event}
    used ring          {u16 flags, u16 idx, {u32 id, u32 len} ring[size], u16 avail_event}

The driver puts the head of a descriptor chain in avail.ring and bumps
avail.idx; the device takes the chain, does the work, writes {head, bytes
written} into used.ring and bumps used.idx.  All fields are little-endian;
indexes are free-running 16-bit counters (ring slot = index % size).

The walker trusts nothing in guest memory: a hostile or buggy driver can
write anything there.  Every chain is walked and checked in full before the
device acts on it, and every way the driver can break the rules is a
`ChainError` (never another exception, never a hang):

  - a descriptor index past the table it is in
  - a buffer (or an indirect table) outside guest RAM (GuestMemory checks)
  - a loop: a chain longer than the table it is in
  - an indirect descriptor when VIRTIO_F_RING_INDIRECT_DESC was not
    negotiated, inside an indirect table (nesting), or with NEXT set too
  - an indirect table that is empty, not a multiple of 16 bytes, longer than
    MAX_INDIRECT descriptors, or not 16-byte aligned
  - a chain of more than 4 GiB in all
  - avail.idx more than `size` ahead of the chains already taken

QueueState, GuestMemory, Buffer and ChainError are given; write the methods
of Virtqueue marked TODO, and need_event.
"""
import struct
from collections import namedtuple

DESC_SIZE = 16
DESC_F_NEXT = 1          # the chain continues at `next`
DESC_F_WRITE = 2         # device-writable (else device-readable)
DESC_F_INDIRECT = 4      # `addr` points to a table of descriptors
AVAIL_F_NO_INTERRUPT = 1
MAX_INDIRECT = 1024      # descriptors in one indirect table, at most

# One buffer of a chain: guest physical address, length, device-writable?
Buffer = namedtuple("Buffer", "address length writable")


class ChainError(Exception):
    """The driver broke the rules: the ring can no longer be trusted."""


class QueueState:
    """What the device knows about one virtqueue (set by the transport)."""

    def __init__(self, size, desc, avail, used, event_idx=False, indirect=False):
        self.size = size            # entries, a power of two
        self.desc = desc            # guest physical addresses of the three rings
        self.avail = avail
        self.used = used
        self.event_idx = event_idx  # VIRTIO_F_RING_EVENT_IDX negotiated
        self.indirect = indirect    # VIRTIO_F_RING_INDIRECT_DESC negotiated
        self.last_avail = 0         # the next avail.ring entry the device will take
        self.used_idx = 0           # the device's copy of used.idx


class GuestMemory:
    """Guest RAM as the device reads it: every access is checked first."""

    def __init__(self, buffer, base):
        self.buffer = buffer
        self.base = base
        self.size = len(buffer)

    def offset(self, address, length):
        """The buffer offset of [address, address+length), or ChainError."""
        if length < 0 or address < self.base or address - self.base + length > self.size:
            raise ChainError(f"0x{address:x}+{length} is outside guest RAM")
        return address - self.base

    def read(self, address, length):
        start = self.offset(address, length)
        return bytes(self.buffer[start:start + length])

    def write(self, address, data):
        start = self.offset(address, len(data))
        self.buffer[start:start + len(data)] = data

    def u16(self, address):
        return struct.unpack_from("<H", self.buffer, self.offset(address, 2))[0]

    def set_u16(self, address, value):
        struct.pack_into("<H", self.buffer, self.offset(address, 2), value & 0xFFFF)


class Virtqueue:
    def __init__(self, memory, state):
        self.memory = memory
        self.state = state

    # -- the available ring ----------------------------------------------------

    def pending(self):
        """How many chains the driver has made available and the device not taken."""
        # TODO
        raise NotImplementedError("pending")

    def take(self):
        """The head index of the next available chain (advances last_avail)."""
        # TODO
        raise NotImplementedError("take")

    # -- walking a chain ---------------------------------------------------------

    def chain(self, head):
        """All buffers of the chain at `head`, checked, in order."""
        # TODO
        raise NotImplementedError("chain")

    # -- the used ring ---------------------------------------------------------------

    def put_used(self, head, written):
        """Return a chain to the driver: {head, bytes written} into used.ring.
        Returns the address of the entry it wrote."""
        # TODO
        raise NotImplementedError("put_used")

    def publish(self, old_used_idx, wrote=lambda address, length: None):
        """Make the new used entries visible; True if the driver wants an
        interrupt.  wrote(address, length) hears of each field written.

        Writes used.idx.  Without EVENT_IDX, the driver wants an interrupt
        unless avail.flags has AVAIL_F_NO_INTERRUPT.  With EVENT_IDX, first
        write avail_event (the u16 after used.ring[size]) = last_avail, then
        read used_event (the u16 after avail.ring[size]) and interrupt only
        if need_event(used_event, used.idx, old_used_idx)."""
        # TODO
        raise NotImplementedError("publish")

def need_event(event, new, old):
    """virtio's vring_need_event: did the used index, moving from `old` to
    `new`, pass `event` (is event in [old, new))?  All 16-bit, wrapping."""
    # TODO
    raise NotImplementedError("need_event")
