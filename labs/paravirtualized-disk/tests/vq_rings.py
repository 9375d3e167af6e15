"""The lab's test rig: split virtqueues built byte by byte in a guest RAM.

`Ring` lays out a queue (descriptor table, available ring, used ring) and
buffers in a bytearray that stands for guest RAM at 0x8000_0000.  `Twin`
hands a copy of it to the student's walker (in the student's process,
through minivm.grading.labkit) and another copy to minivm's own walker
(minivm.devices.virtqueue, the reference), runs the same operation on both,
and checks they agree: the same value, or both a ChainError; afterwards the
same RAM and the same queue state.  The layouts and flags are spelled out
here from the virtio 1.x spec.
"""
import struct

from minivm.grading import labkit
from minivm.devices import virtqueue as reference

BASE = 0x8000_0000
RAM_SIZE = 0x10000                       # 64 KiB of "guest RAM"
DESC, AVAIL, USED = BASE + 0x1000, BASE + 0x2000, BASE + 0x3000
DATA = BASE + 0x4000                     # buffers from here
TABLES = BASE + 0xA000                   # indirect tables from here
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
AVAIL_F_NO_INTERRUPT = 1
CALL_SECONDS = 3                         # a call on a hostile ring must return by then


class Ring:
    def __init__(self, size=8, event_idx=False, indirect=True, ram_size=RAM_SIZE):
        self.size, self.event_idx, self.indirect = size, event_idx, indirect
        self.ram = bytearray(ram_size)
        self.avail_idx = 0

    def desc(self, index, address, length, flags=0, next=0, table=DESC):
        struct.pack_into("<QIHH", self.ram, table - BASE + 16 * index,
                         address & (2**64 - 1), length, flags, next)

    def chain(self, indexes, lengths=None, writable=(), table=DESC, base=DATA):
        """Descriptors `indexes` linked in that order, buffers 256 bytes apart."""
        for position, index in enumerate(indexes):
            length = lengths[position] if lengths else 64
            flags = (F_WRITE if position in writable else 0)
            last = position == len(indexes) - 1
            self.desc(index, base + 256 * index, length, flags | (0 if last else F_NEXT),
                      0 if last else indexes[position + 1], table=table)

    def offer(self, *heads):
        for head in heads:
            struct.pack_into("<H", self.ram, AVAIL - BASE + 4 + 2 * (self.avail_idx % self.size),
                             head)
            self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.set_avail_idx(self.avail_idx)

    def set_avail_idx(self, value):
        struct.pack_into("<H", self.ram, AVAIL - BASE + 2, value & 0xFFFF)

    def set_avail_flags(self, flags):
        struct.pack_into("<H", self.ram, AVAIL - BASE, flags)

    def set_used_event(self, value):
        struct.pack_into("<H", self.ram, AVAIL - BASE + 4 + 2 * self.size, value & 0xFFFF)


def show(value):
    """A value for a message: addresses in hex."""
    if isinstance(value, list):
        return "[" + ", ".join(show(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(show(item) for item in value) + ")"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0xFFFF:
        return hex(value)
    return repr(value)


def plain(value):
    """A walker's result in a comparable form (buffers as (address, length, writable))."""
    if isinstance(value, list):
        return [tuple(item[:2]) + (bool(item[2]),)
                if isinstance(item, tuple) and len(item) == 3 else item for item in value]
    return value


class Twin:
    """The student's Virtqueue and minivm's, on two copies of one RAM."""

    def __init__(self, ring, module=None):
        self.ring = ring
        self.vq = module or labkit.load("virtqueue.py")
        self.memory = self.vq.GuestMemory(bytearray(ring.ram), BASE)
        self.state = self.vq.QueueState(ring.size, DESC, AVAIL, USED, event_idx=ring.event_idx,
                                        indirect=ring.indirect)
        self.queue = self.vq.Virtqueue(self.memory, self.state)
        self.ref_ram = bytearray(ring.ram)
        self.ref_state = reference.QueueState(ring.size, DESC, AVAIL, USED,
                                              event_idx=ring.event_idx, indirect=ring.indirect)
        self.ref = reference.Virtqueue(reference.GuestMemory(self.ref_ram, BASE),
                                       self.ref_state)

    def set_state(self, last_avail=None, used_idx=None):
        for state in (self.state, self.ref_state):
            if last_avail is not None:
                state.last_avail = last_avail
            if used_idx is not None:
                state.used_idx = used_idx

    def expected(self, name, *args):
        try:
            return ("value", plain(getattr(self.ref, name)(*args)))
        except reference.ChainError as error:
            return ("ChainError", str(error))

    def do(self, name, *args, what="", seconds=CALL_SECONDS):
        """Run queue.name(*args) on both; they must agree.  Returns the outcome."""
        want = self.expected(name, *args)
        call = f"{name}({', '.join(hex(a) if isinstance(a, int) else repr(a) for a in args)})"
        context = f" ({what})" if what else ""
        try:
            with labkit.time_limit(seconds):
                got = ("value", plain(labkit.method(self.queue, name)(*args)))
        except labkit.SubmissionError as error:
            if error.is_a("ChainError"):
                got = ("ChainError", error.detail)
            elif isinstance(error, (labkit.SubmissionTimeout, labkit.SubmissionCrashed,
                                    labkit.SubmissionOutputLimit)):
                raise AssertionError(f"{error}{context}") from None
            else:
                if want[0] == "ChainError":
                    raise AssertionError(f"{call}{context} must raise ChainError "
                                         f"({want[1]}), not:\n{error}") from None
                raise AssertionError(f"{call}{context} should return {show(want[1])}, but:\n"
                                     f"{error}") from None
        if want[0] == "ChainError" and got[0] != "ChainError":
            raise AssertionError(f"{call}{context} returned {show(got[1])}; it must raise "
                                 f"ChainError ({want[1]})")
        if want[0] == "value" and got != want:
            if got[0] == "ChainError":
                raise AssertionError(f"{call}{context} raised ChainError ({got[1]}); "
                                     f"expected {want[1]!r}")
            raise AssertionError(f"{call}{context} returned {got[1]!r}, expected {want[1]!r}")
        return want

    def check_ram(self, what=""):
        got = self.memory.buffer
        if not isinstance(got, (bytes, bytearray)) or got != self.ref_ram:
            if not isinstance(got, (bytes, bytearray)) or len(got) != len(self.ref_ram):
                raise AssertionError("GuestMemory.buffer is no longer the RAM it was given")
            first = next(i for i in range(len(got)) if got[i] != self.ref_ram[i])
            raise AssertionError(f"guest RAM differs at 0x{BASE + first:x} ({where(first, self.ring)})"
                                 f"{' after ' + what if what else ''}: "
                                 f"0x{got[first]:02x}, expected 0x{self.ref_ram[first]:02x}")

    def check_state(self):
        for field in ("last_avail", "used_idx"):
            got, want = getattr(self.state, field), getattr(self.ref_state, field)
            assert got == want, f"QueueState.{field} is {got!r}, expected {want!r}"


def where(offset, ring):
    address = BASE + offset
    if USED <= address < USED + 4:
        return "used.flags/used.idx"
    if USED + 4 <= address < USED + 4 + 8 * ring.size:
        return f"used.ring[{(address - USED - 4) // 8}]"
    if address in (USED + 4 + 8 * ring.size, USED + 5 + 8 * ring.size):
        return "avail_event"
    if AVAIL <= address < USED:
        return "the available ring (the device must not write it)"
    if DESC <= address < AVAIL:
        return "the descriptor table (the device must not write it)"
    return "a buffer"
