"""Visible tests of the paravirtualized-disk lab (the hidden ones check the rest,
with hostile rings).

    pytest labs/paravirtualized-disk/tests                   # starter/virtqueue.py
    MINIVM_SUBMISSION=path/to/your/folder pytest labs/paravirtualized-disk/tests

Each test runs your walker and minivm's on copies of the same ring (vq_rings.Twin).
"""
from vq_rings import AVAIL_F_NO_INTERRUPT, DATA, F_INDIRECT, TABLES, Ring, Twin


def test_pending_and_take():
    """pending() counts the chains offered; take() returns their heads in order."""
    ring = Ring(size=8)
    ring.offer(3, 0, 5)
    twin = Twin(ring)
    twin.do("pending")
    for _ in range(3):
        twin.do("take")
    twin.do("pending")
    twin.check_state()


def test_single_buffer_chain():
    """A chain of one device-readable buffer."""
    ring = Ring()
    ring.desc(0, DATA, 16)
    Twin(ring).do("chain", 0)


def test_chain_follows_next():
    """NEXT links descriptors in any order; WRITE marks device-writable buffers."""
    ring = Ring(size=8)
    ring.chain([5, 2, 7], lengths=[16, 512, 1], writable=(1, 2))
    Twin(ring).do("chain", 5)


def test_indirect_chain():
    """An INDIRECT descriptor points to a table that holds the chain."""
    ring = Ring(size=8)
    ring.chain([0, 1, 2], lengths=[16, 4096 - 17, 1], writable=(1, 2), table=TABLES)
    ring.desc(4, TABLES, 3 * 16, F_INDIRECT)
    Twin(ring).do("chain", 4)


def test_put_used_and_publish():
    """put_used fills used.ring; publish writes used.idx and asks for an interrupt."""
    ring = Ring(size=4)
    ring.chain([0, 1], writable=(1,))
    ring.chain([2], writable=(0,))
    ring.offer(0, 2)
    twin = Twin(ring)
    for _ in range(2):
        head = twin.do("take")[1]
        twin.do("chain", head)
        twin.do("put_used", head, 0x41 + head)
    twin.do("publish", 0)
    twin.check_ram("publish")
    twin.check_state()


def test_no_interrupt_flag():
    """Without EVENT_IDX, avail.flags NO_INTERRUPT means: do not interrupt."""
    ring = Ring(size=4)
    ring.chain([0])
    ring.offer(0)
    ring.set_avail_flags(AVAIL_F_NO_INTERRUPT)
    twin = Twin(ring)
    twin.do("take")
    twin.do("put_used", 0, 0)
    twin.do("publish", 0)
    twin.check_ram("publish")
