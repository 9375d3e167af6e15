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
        state = self.state
        available = (self.memory.u16(state.avail + 2) - state.last_avail) & 0xFFFF
        if available > state.size:
            raise ChainError(f"avail.idx moved by {available}, more than the queue size")
        return available

    def take(self):
        """The head index of the next available chain (advances last_avail)."""
        state = self.state
        slot = state.avail + 4 + 2 * (state.last_avail % state.size)
        head = self.memory.u16(slot)
        state.last_avail = (state.last_avail + 1) & 0xFFFF
        return head

    # -- walking a chain ---------------------------------------------------------

    def chain(self, head):
        """All buffers of the chain at `head`, checked, in order."""
        state = self.state
        buffers = []
        index, table, table_size = head, state.desc, state.size
        in_indirect = False
        budget = state.size            # a chain cannot be longer than the queue
        total = 0
        while True:
            if index >= table_size:
                raise ChainError(f"descriptor index {index} is past the table ({table_size})")
            if budget == 0:
                raise ChainError("chain longer than its table: a loop?")
            budget -= 1
            address, length, flags, following = struct.unpack(
                "<QIHH", self.memory.read(table + DESC_SIZE * index, DESC_SIZE))
            if flags & DESC_F_INDIRECT:
                if in_indirect or not state.indirect:
                    raise ChainError("indirect descriptor inside an indirect table, or not negotiated")
                if flags & DESC_F_NEXT:
                    raise ChainError("INDIRECT and NEXT together")
                if length == 0 or length % DESC_SIZE or length // DESC_SIZE > MAX_INDIRECT \
                        or address % DESC_SIZE:
                    raise ChainError(f"bad indirect table at 0x{address:x}, {length} bytes")
                self.memory.offset(address, length)          # the table is in RAM
                table, table_size, index = address, length // DESC_SIZE, 0
                budget = table_size
                in_indirect = True
                continue
            self.memory.offset(address, length)               # the buffer is in RAM
            total += length
            if total > 0xFFFFFFFF:
                raise ChainError("chain longer than 4 GiB")
            buffers.append(Buffer(address, length, bool(flags & DESC_F_WRITE)))
            if not flags & DESC_F_NEXT:
                return buffers
            index = following

    # -- the used ring ---------------------------------------------------------------

    def put_used(self, head, written):
        """Return a chain to the driver: {head, bytes written} into used.ring.
        Returns the address of the entry it wrote."""
        state = self.state
        slot = state.used + 4 + 8 * (state.used_idx % state.size)
        self.memory.write(slot, struct.pack("<II", head, written))
        state.used_idx = (state.used_idx + 1) & 0xFFFF
        return slot

    def publish(self, old_used_idx, wrote=lambda address, length: None):
        """Make the new used entries visible; True if the driver wants an
        interrupt.  wrote(address, length) hears of each field written.

        Writes used.idx.  Without EVENT_IDX, the driver wants an interrupt
        unless avail.flags has AVAIL_F_NO_INTERRUPT.  With EVENT_IDX, first
        write avail_event (the u16 after used.ring[size]) = last_avail, then
        read used_event (the u16 after avail.ring[size]) and interrupt only
        if need_event(used_event, used.idx, old_used_idx)."""
        state = self.state
        self.memory.set_u16(state.used + 2, state.used_idx)
        wrote(state.used + 2, 2)
        if state.event_idx:
            # Tell the driver how far we read, and interrupt only if the
            # used index passed the point it asked for (used_event).
            self.memory.set_u16(state.used + 4 + 8 * state.size, state.last_avail)
            wrote(state.used + 4 + 8 * state.size, 2)
            used_event = self.memory.u16(state.avail + 4 + 2 * state.size)
            return need_event(used_event, state.used_idx, old_used_idx)
        return not self.memory.u16(state.avail) & AVAIL_F_NO_INTERRUPT


def need_event(event, new, old):
    """virtio's vring_need_event: did the used index, moving from `old` to
    `new`, pass `event` (is event in [old, new))?  All 16-bit, wrapping."""
    return (new - event - 1) & 0xFFFF < (new - old) & 0xFFFF
