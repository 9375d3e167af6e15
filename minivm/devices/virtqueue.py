"""The split virtqueue, walked in pure Python: the specification.

OASIS virtio 1.x, "Split Virtqueues".  The driver (the guest) and the device
(the host) share three rings in guest RAM:

    descriptor table   size x 16 bytes: {u64 addr, u32 len, u16 flags, u16 next}
    available ring     {u16 flags, u16 idx, u16 ring[size], u16 used_event}
    used ring          {u16 flags, u16 idx, {u32 id, u32 len} ring[size], u16 avail_event}

The driver puts the head of a descriptor chain in avail.ring and bumps
avail.idx; the device takes the chain, does the work, writes {head, bytes
written} into used.ring and bumps used.idx.  All fields are little-endian.

This walker trusts nothing in guest memory.  Every chain is walked and
checked in full before the device acts on it (vm-virtio's chain.rs and
Firecracker's queue.rs do the same): an index past the table, an address or
length outside RAM or overflowing, a loop, a chain longer than the queue,
an indirect table that is misaligned, nested, empty or oversized, or the
flags INDIRECT and NEXT together.  Each is a `ChainError`; the device then
cannot trust the ring and must ask for a reset (DEVICE_NEEDS_RESET), and
minivm says why on stderr (`describe_fault`): a driver left waiting for a
request that never completes is the hardest bug a student meets.
minivm/_fastpath.pyx is the same walker in Cython; they must agree exactly,
down to the fault they report.
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


# Why a ring was refused: ChainError.reason.  minivm/_fastpath.pyx reports
# the same numbers.  The texts take the fault's address and length.
OUTSIDE_RAM = 1
AVAIL_IDX_JUMP = 2
PAST_TABLE = 3
CHAIN_TOO_LONG = 4
INDIRECT_REFUSED = 5
INDIRECT_WITH_NEXT = 6
BAD_INDIRECT_TABLE = 7
OVER_4GIB = 8
NO_STATUS_BYTE = 9
REASONS = {
    AVAIL_IDX_JUMP: "avail.idx moved by {length}, more than the queue size",
    PAST_TABLE: "the index is past the table ({length} entries)",
    CHAIN_TOO_LONG: "the chain is longer than its table: a loop?",
    INDIRECT_REFUSED: "INDIRECT inside an indirect table, or not negotiated",
    INDIRECT_WITH_NEXT: "INDIRECT and NEXT together",
    BAD_INDIRECT_TABLE: "indirect table at {address:#x}, {length} bytes: "
                        "misaligned, empty or over 1024 entries",
    OVER_4GIB: "the chain is longer than 4 GiB",
    NO_STATUS_BYTE: "no device-writable status byte at its end",
}

# What a twin returns about a refused ring.  head: the chain it was serving
# (None for the rings themselves); descriptor: the index it was reading
# (None for the request as a whole), in the indirect table if `indirect`.
Fault = namedtuple("Fault", "reason head descriptor indirect address length")

# The fields each reason fills in (the others are None).
ADDRESS_AND_LENGTH = (OUTSIDE_RAM, AVAIL_IDX_JUMP, BAD_INDIRECT_TABLE)
LENGTH_ONLY = (PAST_TABLE,)


def make_fault(reason, head, descriptor, indirect, address, length):
    """A Fault with only the fields `reason` gives (the Cython twin's way in)."""
    if reason not in ADDRESS_AND_LENGTH:
        address = None
        if reason not in LENGTH_ONLY:
            length = None
    return Fault(reason, head, descriptor, indirect, address, length)


class ChainError(Exception):
    """The driver broke the rules: the ring can no longer be trusted."""

    def __init__(self, reason, address=None, length=None):
        super().__init__(reason_text(reason, address, length))
        self.reason, self.address, self.length = reason, address, length
        self.head = self.descriptor = None
        self.indirect = False

    def at(self, head, descriptor=None, indirect=False):
        """Say where the walk was, unless a deeper frame already did."""
        if self.head is None:
            self.head, self.descriptor, self.indirect = head, descriptor, indirect
        return self

    def fault(self):
        return Fault(self.reason, self.head, self.descriptor, self.indirect,
                     self.address, self.length)


def outside_ram(address, length):
    """The words for a guest range outside RAM, with a hint for the commonest
    cause: an RV32 driver's pointer sign-extended into a 64-bit address (GCC
    sign-extends `(uint64_t)pointer` on RV32)."""
    text = f"{address:#x}+{length} is outside guest RAM"
    if address >> 31 == (1 << 33) - 1:
        text += (f" (0x{address & 0xFFFFFFFF:x} sign-extended to 64 bits? "
                 "cast the pointer through uint32_t)")
    return text


def reason_text(reason, address, length):
    if reason == OUTSIDE_RAM:
        return outside_ram(address, length)
    return REASONS[reason].format(address=address or 0, length=length)


def describe_fault(fault):
    """One line for stderr: where in the ring, and what was wrong."""
    text = reason_text(fault.reason, fault.address, fault.length)
    if fault.head is None:
        return f"the rings: {text}"
    where = f"request at head {fault.head}"
    if fault.descriptor is not None:
        table = "indirect table" if fault.indirect else "descriptor table"
        where += f", descriptor {fault.descriptor} of the {table}"
    return f"{where}: {text}"


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
            raise ChainError(OUTSIDE_RAM, address, length)
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
            raise ChainError(AVAIL_IDX_JUMP, state.avail + 2, available)
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
        try:
            while True:
                if index >= table_size:
                    raise ChainError(PAST_TABLE, length=table_size)
                if budget == 0:
                    raise ChainError(CHAIN_TOO_LONG)
                budget -= 1
                address, length, flags, following = struct.unpack(
                    "<QIHH", self.memory.read(table + DESC_SIZE * index, DESC_SIZE))
                if flags & DESC_F_INDIRECT:
                    if in_indirect or not state.indirect:
                        raise ChainError(INDIRECT_REFUSED)
                    if flags & DESC_F_NEXT:
                        raise ChainError(INDIRECT_WITH_NEXT)
                    if length == 0 or length % DESC_SIZE or length // DESC_SIZE > MAX_INDIRECT \
                            or address % DESC_SIZE:
                        raise ChainError(BAD_INDIRECT_TABLE, address, length)
                    self.memory.offset(address, length)          # the table is in RAM
                    table, table_size, index = address, length // DESC_SIZE, 0
                    budget = table_size
                    in_indirect = True
                    continue
                self.memory.offset(address, length)               # the buffer is in RAM
                total += length
                if total > 0xFFFFFFFF:
                    raise ChainError(OVER_4GIB)
                buffers.append(Buffer(address, length, bool(flags & DESC_F_WRITE)))
                if not flags & DESC_F_NEXT:
                    return buffers
                index = following
        except ChainError as error:
            raise error.at(head, index, in_indirect)

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
        interrupt.  wrote(address, length) hears of each field written."""
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
    """virtio's vring_need_event: did [old, new) cross `event`?  (16-bit arithmetic)"""
    return (new - event - 1) & 0xFFFF < (new - old) & 0xFFFF
