"""Hidden tests of the paravirtualized-disk lab: the event index, wrap-around,
and hostile rings, which must raise ChainError (never hang, never crash)."""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))

from vq_rings import (BASE, DATA, DESC, F_INDIRECT, F_NEXT, F_WRITE, RAM_SIZE,  # noqa: E402
                      TABLES, Ring, Twin)

from minivm.grading import labkit  # noqa: E402
from minivm.devices.virtqueue import need_event  # noqa: E402


def test_need_event():
    """need_event(event, new, old) over a grid of values, wrap-around included."""
    module = labkit.load("virtqueue.py")
    call = labkit.method(module, "need_event")
    values = [0, 1, 2, 5, 100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF]
    for event in values:
        for old in values:
            for step in (0, 1, 3):
                new = (old + step) & 0xFFFF
                got = call(event, new, old)
                want = need_event(event, new, old)
                assert got == want, (f"need_event(event={event}, new={new}, old={old}) is "
                                     f"{got!r}, expected {want!r}")


def test_event_idx_publish():
    """With EVENT_IDX: avail_event is written, and the interrupt follows used_event."""
    for used_event, used_idx in [(0, 0), (1, 0), (5, 3), (0xFFFF, 0xFFFF), (2, 0xFFFE)]:
        ring = Ring(size=4, event_idx=True)
        ring.chain([0])
        ring.chain([1])
        ring.set_used_event(used_event)
        ring.offer(0, 1)
        twin = Twin(ring)
        twin.set_state(used_idx=used_idx)
        for head in (0, 1):
            twin.do("take")
            twin.do("put_used", head, 8)
        twin.do("publish", used_idx, what=f"used_event {used_event}, used_idx {used_idx}")
        twin.check_ram("publish with EVENT_IDX")


def test_loop_is_chain_error():
    """Chains that loop (in the table or in an indirect table) raise ChainError."""
    ring = Ring(size=8)
    ring.desc(0, DATA, 8, F_NEXT, 1)
    ring.desc(1, DATA, 8, F_NEXT, 0)
    ring.desc(3, DATA, 8, F_NEXT, 3)
    ring.desc(0, DATA, 8, F_NEXT, 1, table=TABLES)
    ring.desc(1, DATA, 8, F_NEXT, 0, table=TABLES)
    ring.desc(5, TABLES, 32, F_INDIRECT)
    twin = Twin(ring)
    twin.do("chain", 0, what="0 -> 1 -> 0")
    twin.do("chain", 3, what="3 -> 3")
    twin.do("chain", 5, what="a loop inside an indirect table")
    ring = Ring(size=8)
    for index in range(8):
        ring.desc(index, DATA, 8, F_NEXT, (index + 1) % 8)
    Twin(ring).do("chain", 6, what="a cycle through the whole table")


def test_index_past_table():
    """Heads and next fields past the table raise ChainError."""
    ring = Ring(size=8)
    ring.desc(0, DATA, 8, F_NEXT, 8)
    ring.desc(1, DATA, 8, F_NEXT, 0xFFFF)
    ring.desc(8, DATA, 8)                     # just past the table: looks valid, is not
    ring.desc(0, DATA, 8, F_NEXT, 2, table=TABLES)
    ring.desc(2, DATA, 8, table=TABLES)       # just past the 2-entry indirect table
    ring.desc(2, TABLES, 32, F_INDIRECT)
    twin = Twin(ring)
    twin.do("chain", 8, what="head 8 in a table of 8")
    twin.do("chain", 0, what="next 8 in a table of 8")
    twin.do("chain", 1, what="next 0xffff")
    twin.do("chain", 2, what="next past a 2-entry indirect table")


def test_buffer_outside_ram():
    """Buffers below, beyond or across the end of RAM raise ChainError."""
    ring = Ring(size=8)
    ring.desc(0, BASE - 16, 8)
    ring.desc(1, BASE + RAM_SIZE, 1)
    ring.desc(2, BASE + RAM_SIZE - 8, 16)
    ring.desc(3, 2**64 - 8, 16)
    ring.desc(4, DATA, 0xFFFFFFFF)
    ring.desc(5, BASE + RAM_SIZE - 8, 8)
    twin = Twin(ring)
    for head in range(6):
        twin.do("chain", head, what=f"descriptor {head}")


def test_nested_indirect():
    """An indirect table may not hold another INDIRECT descriptor."""
    ring = Ring(size=8)
    ring.desc(0, TABLES + 0x100, 16, F_INDIRECT, table=TABLES)
    ring.desc(0, DATA, 8, table=TABLES + 0x100)
    ring.desc(1, TABLES, 16, F_INDIRECT)
    Twin(ring).do("chain", 1)


def test_indirect_with_next():
    """INDIRECT together with NEXT raises ChainError."""
    ring = Ring(size=8)
    ring.desc(0, DATA, 8, table=TABLES)
    ring.desc(1, TABLES, 16, F_INDIRECT | F_NEXT, 2)
    ring.desc(2, DATA, 8)
    Twin(ring).do("chain", 1)


def test_bad_indirect_tables():
    """Empty, ragged, misaligned, oversized, out-of-RAM and un-negotiated indirect tables."""
    ring = Ring(size=8, ram_size=0x20000)
    ring.desc(0, DATA, 8, table=TABLES)
    ring.desc(1, TABLES, 0, F_INDIRECT)
    ring.desc(2, TABLES, 24, F_INDIRECT)
    ring.desc(3, TABLES + 8, 16, F_INDIRECT)
    ring.desc(4, BASE + 0x10000, 1025 * 16, F_INDIRECT)
    ring.desc(5, BASE + 0x20000 - 16, 32, F_INDIRECT)
    ring.desc(6, TABLES, 16, F_INDIRECT | F_WRITE)
    twin = Twin(ring)
    for head, what in [(1, "empty table"), (2, "24 bytes"), (3, "misaligned"),
                       (4, "1025 descriptors"), (5, "past the end of RAM"),
                       (6, "a valid table, flags INDIRECT|WRITE")]:
        twin.do("chain", head, what=what)
    ring = Ring(size=8, indirect=False)
    ring.desc(0, DATA, 8, table=TABLES)
    ring.desc(1, TABLES, 16, F_INDIRECT)
    Twin(ring).do("chain", 1, what="INDIRECT not negotiated")


def test_avail_idx_jump():
    """avail.idx more than the queue size ahead raises ChainError; exactly the size does not."""
    for jump in (4, 5, 0xFFFF):
        ring = Ring(size=4)
        ring.set_avail_idx(jump)
        Twin(ring).do("pending", what=f"avail.idx {jump} with last_avail 0")


def test_wraparound():
    """Indexes wrap at 65536: taking and returning chains across the wrap."""
    ring = Ring(size=4)
    for index in range(4):
        ring.chain([index])
    ring.avail_idx = 0xFFFE
    ring.offer(1, 2, 3)
    twin = Twin(ring)
    twin.set_state(last_avail=0xFFFE, used_idx=0xFFFF)
    twin.do("pending")
    for _ in range(3):
        head = twin.do("take")[1]
        twin.do("chain", head)
        twin.do("put_used", head, 1)
    twin.do("publish", 0xFFFF)
    twin.check_ram("wrapping")
    twin.check_state()


def test_random_rings():
    """Random (seeded) rings, mostly hostile: the walker agrees with minivm's on each."""
    module = labkit.load("virtqueue.py")
    rings, agreed, first_failure, hangs = 60, 0, None, 0
    for seed in range(rings):
        if hangs >= 3:
            break                                 # no time for more: the rest count as failed
        rng = random.Random(seed)
        size = rng.choice([2, 4, 8, 16])
        ring = Ring(size=size, indirect=rng.random() < 0.8)
        for table in (DESC, TABLES, TABLES + 0x400):
            for index in range(size if table == DESC else 8):
                flags = rng.choice([0, F_NEXT, F_NEXT, F_WRITE, F_NEXT | F_WRITE, F_INDIRECT,
                                    F_INDIRECT | F_NEXT])
                address = rng.choice([DATA + 64 * rng.randrange(64), TABLES, TABLES + 0x400,
                                      TABLES + 8, BASE - 64, BASE + RAM_SIZE - 32,
                                      rng.getrandbits(64)])
                length = rng.choice([0, 1, 16, 32, 48, 128, 4096, 0x10000, rng.getrandbits(32)])
                ring.desc(index, address, length, flags, rng.randrange(size + 2), table=table)
        try:
            twin = Twin(ring, module)
            for head in rng.sample(range(size + 1), min(3, size + 1)):
                twin.do("chain", head, what=f"random ring {seed}", seconds=1)
            agreed += 1
        except (AssertionError, labkit.SubmissionError) as error:
            if "did not return" in str(error) or "process" in str(error):
                hangs += 1
                module = labkit.load("virtqueue.py")      # a fresh process for the next ring
            first_failure = first_failure or str(error)
    if agreed < rings:
        raise labkit.Partial(agreed / rings,
                             f"{agreed} of {rings} random rings agree; first difference: "
                             f"{first_failure}")
