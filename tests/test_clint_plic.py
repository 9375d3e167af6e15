"""Unit tests of the interrupt controllers: minivm.devices.clint.Clint and
minivm.devices.plic.Plic.

The tests drive the real classes through the interface the bus uses --
read(offset, size) and write(offset, size, value) -- plus the board side:
the CLINT's clock callable and its state queries, the PLIC's set_level()
lines and its per-context output callback.  The CLINT's clock is a number
the test sets; every level the PLIC puts on a context output is recorded.

Layouts: the SiFive CLINT (msip @0, mtimecmp @0x4000, mtime @0xBFF8, 64-bit
registers also reachable as little-endian 4-byte halves) and the RISC-V PLIC
Specification 1.0.0 with QEMU `virt`'s sources 1..95 and two contexts.
"""
import pytest

from minivm.devices.clint import Clint
from minivm.devices.plic import Plic

# -- CLINT ---------------------------------------------------------------------

# Offsets and constants spelled out here so the tests do not trust the module's own.
MSIP = 0x0000
MTIMECMP = 0x4000
MTIME = 0xBFF8
ALL_ONES = (1 << 64) - 1


class ClintRig:
    """A CLINT whose clock is `self.time`, recording what on_change saw."""

    def __init__(self):
        self.time = 0
        # (software_pending, timer_pending) at each on_change call: the board
        # reads the CLINT's state from inside the callback.
        self.changes = []
        self.clint = Clint(now=lambda: self.time, on_change=self._changed)

    def _changed(self):
        self.changes.append((self.clint.software_pending(), self.clint.timer_pending()))

    def rd(self, offset, size=8):
        return self.clint.read(offset, size)

    def wr(self, offset, value, size=8):
        self.clint.write(offset, size, value)


@pytest.fixture
def clint():
    return ClintRig()


def test_clint_power_on_msip_is_zero(clint):
    assert clint.rd(MSIP, 4) == 0
    assert clint.clint.software_pending() is False


def test_clint_power_on_mtimecmp_is_zero_as_on_qemu(clint):
    # QEMU 7.2 (firmware/clint_halves.c shows it): a kernel that writes only
    # the low half of mtimecmp relies on the high half being 0.
    assert clint.rd(MTIMECMP) == 0
    assert (clint.rd(MTIMECMP, 4), clint.rd(MTIMECMP + 4, 4)) == (0, 0)


def test_clint_power_on_mtime_is_the_clock(clint):
    clint.time = 1234
    assert clint.rd(MTIME) == 1234
    clint.time = 98765
    assert clint.rd(MTIME) == 98765


def test_clint_power_on_timer_pending_at_once(clint):
    assert clint.clint.timer_pending() is True      # mtime 0 >= mtimecmp 0
    assert clint.clint.ticks_until_timer() == 0


# -- mtimecmp: whole and in halves ----------------------------------------------

def test_mtimecmp_round_trip(clint):
    clint.wr(MTIMECMP, 0x1122334455667788)
    assert clint.rd(MTIMECMP) == 0x1122334455667788


def test_mtimecmp_halves_are_little_endian(clint):
    clint.wr(MTIMECMP, 0x1122334455667788)
    assert clint.rd(MTIMECMP, 4) == 0x55667788
    assert clint.rd(MTIMECMP + 4, 4) == 0x11223344


def test_mtimecmp_low_half_write_keeps_high_half(clint):
    clint.wr(MTIMECMP, 0xAABBCCDD_00000000)
    clint.wr(MTIMECMP, 0x12345678, size=4)
    assert clint.rd(MTIMECMP) == 0xAABBCCDD_12345678


def test_mtimecmp_high_half_write_keeps_low_half(clint):
    clint.wr(MTIMECMP, 0x1122334455667788)
    clint.wr(MTIMECMP + 4, 0xAABBCCDD, size=4)
    assert clint.rd(MTIMECMP) == 0xAABBCCDD_55667788


def test_mtimecmp_two_half_writes_make_a_value(clint):
    # The RV32 way: high half to all ones first, then low, then high.
    clint.wr(MTIMECMP + 4, 0xFFFFFFFF, size=4)
    clint.wr(MTIMECMP, 0x00000500, size=4)
    clint.wr(MTIMECMP + 4, 0x00000002, size=4)
    assert clint.rd(MTIMECMP) == 0x2_00000500


# -- mtime: whole and in halves, and writes -------------------------------------

def test_mtime_halves_are_little_endian(clint):
    clint.time = 0x0000000A_FFFFFFF0
    assert clint.rd(MTIME, 4) == 0xFFFFFFF0
    assert clint.rd(MTIME + 4, 4) == 0x0000000A


def test_mtime_write_then_follows_the_clock(clint):
    clint.time = 100
    clint.wr(MTIME, 5000)
    assert clint.rd(MTIME) == 5000
    clint.time = 150
    assert clint.rd(MTIME) == 5050


def test_mtime_write_backwards(clint):
    clint.time = 1000
    clint.wr(MTIME, 10)
    clint.time = 1003
    assert clint.rd(MTIME) == 13


def test_mtime_low_half_write_keeps_high_half(clint):
    clint.time = (3 << 32) + 1
    clint.wr(MTIME, 0x100, size=4)
    assert clint.rd(MTIME) == (3 << 32) | 0x100
    clint.time += 5
    assert clint.rd(MTIME) == (3 << 32) | 0x105


def test_mtime_high_half_write_keeps_low_half(clint):
    clint.time = 0x10
    clint.wr(MTIME + 4, 7, size=4)
    assert clint.rd(MTIME) == (7 << 32) | 0x10
    clint.time = 0x15
    assert clint.rd(MTIME + 4, 4) == 7
    assert clint.rd(MTIME, 4) == 0x15


def test_mtime_wraps_at_64_bits(clint):
    clint.time = 50
    clint.wr(MTIME, ALL_ONES)
    assert clint.rd(MTIME) == ALL_ONES
    clint.time = 52
    assert clint.rd(MTIME) == 1
    clint.wr(MTIMECMP, 100)
    assert clint.clint.timer_pending() is False   # 1 < 100 once wrapped
    assert clint.clint.ticks_until_timer() == 99


# -- the timer -------------------------------------------------------------------

def test_timer_pending_iff_mtime_reaches_mtimecmp(clint):
    clint.wr(MTIMECMP, 100)
    seen = {}
    for clint.time in (0, 99, 100, 101, 1 << 40):
        seen[clint.time] = clint.clint.timer_pending()
    assert seen == {0: False, 99: False, 100: True, 101: True, 1 << 40: True}


def test_timer_pending_uses_the_written_mtime(clint):
    clint.wr(MTIMECMP, 1000)
    clint.time = 10
    clint.wr(MTIME, 999)
    assert clint.clint.timer_pending() is False
    clint.time = 11
    assert clint.clint.timer_pending() is True


def test_raising_mtimecmp_clears_the_timer(clint):
    clint.time = 500
    clint.wr(MTIMECMP, 500)
    assert clint.clint.timer_pending() is True
    clint.wr(MTIMECMP, 501)
    assert clint.clint.timer_pending() is False


def test_ticks_until_timer_counts_down_to_zero(clint):
    clint.wr(MTIMECMP, 100)
    clint.time = 40
    assert clint.clint.ticks_until_timer() == 60
    clint.time = 100
    assert clint.clint.ticks_until_timer() == 0
    clint.time = 150
    assert clint.clint.ticks_until_timer() == 0     # overdue is still 0, never negative


def test_ticks_until_timer_follows_a_written_mtime(clint):
    clint.time = 7
    clint.wr(MTIME, 1000)
    clint.wr(MTIMECMP, 1500)
    assert clint.clint.ticks_until_timer() == 500


def test_ticks_until_timer_all_ones_is_a_time_like_any_other(clint):
    # The CLINT does not decide what is too far: the board does (all ones
    # is past the end of virtual time, tests/test_clock.py).
    clint.time = 100
    clint.wr(MTIMECMP, ALL_ONES)
    assert clint.clint.ticks_until_timer() == ALL_ONES - 100
    clint.wr(MTIME, ALL_ONES - 1)
    assert clint.clint.ticks_until_timer() == 1


# -- msip ------------------------------------------------------------------------

def test_msip_keeps_bit_0_only(clint):
    clint.wr(MSIP, 0xFFFFFFFF, size=4)
    assert clint.rd(MSIP, 4) == 1
    assert clint.clint.software_pending() is True


def test_msip_write_without_bit_0_clears_it(clint):
    clint.wr(MSIP, 1, size=4)
    clint.wr(MSIP, 0xFFFFFFFE, size=4)
    assert clint.rd(MSIP, 4) == 0
    assert clint.clint.software_pending() is False


def test_msip_byte_write_above_bit_0_does_not_set_it(clint):
    clint.wr(MSIP + 1, 0x01, size=1)
    assert clint.rd(MSIP, 4) == 0
    assert clint.clint.software_pending() is False


# -- on_change -------------------------------------------------------------------

def test_on_change_not_called_at_power_on_or_on_reads(clint):
    for offset, size in [(MSIP, 4), (MTIMECMP, 8), (MTIMECMP + 4, 4), (MTIME, 8)]:
        clint.rd(offset, size)
    assert clint.changes == []


def test_on_change_sees_new_msip(clint):
    clint.wr(MSIP, 1, size=4)
    clint.wr(MSIP, 0, size=4)
    assert clint.changes == [(True, True), (False, True)]   # mtimecmp 0: the timer is due


def test_on_change_sees_new_mtimecmp(clint):
    clint.time = 50
    clint.wr(MTIMECMP, ALL_ONES)                  # not due
    clint.wr(MTIMECMP + 4, 0, size=4)             # 0x00000000_FFFFFFFF: not due
    clint.wr(MTIMECMP, 0, size=4)                 # now 0: due
    clint.wr(MTIMECMP, 51)                        # not due
    assert clint.changes == [(False, False), (False, False), (False, True), (False, False)]


def test_on_change_sees_new_mtime(clint):
    clint.wr(MTIMECMP, 1000)
    clint.wr(MTIME, 1000)
    clint.wr(MTIME + 4, 0, size=4)
    assert clint.changes == [(False, False), (False, True), (False, True)]


# -- holes -----------------------------------------------------------------------

@pytest.mark.parametrize("offset, size", [
    (0x0004, 4), (0x0008, 8), (0x3FF8, 8), (0x4008, 4), (0x8000, 8), (0xBFF0, 8),
    (0x4004, 8),    # straddles the end of mtimecmp
    (0xBFFC, 8),    # straddles the end of mtime
])
def test_holes_read_zero(clint, offset, size):
    clint.time = ALL_ONES
    clint.wr(MSIP, 1, size=4)
    clint.wr(MTIMECMP, ALL_ONES - 1)
    assert clint.rd(offset, size) == 0


@pytest.mark.parametrize("offset, size", [(0x0004, 4), (0x4008, 8), (0x4004, 8), (0x8000, 4)])
def test_hole_writes_change_nothing(clint, offset, size):
    clint.time = 10
    clint.wr(MTIMECMP, 100)
    before = [clint.rd(MSIP, 4), clint.rd(MTIMECMP), clint.rd(MTIME)]
    calls = len(clint.changes)
    clint.wr(offset, ALL_ONES, size=size)
    assert [clint.rd(MSIP, 4), clint.rd(MTIMECMP), clint.rd(MTIME)] == before
    assert len(clint.changes) == calls


# -- reset -----------------------------------------------------------------------

def test_clint_reset_as_qemu_clears_msip_and_mtime_keeps_mtimecmp(clint):
    # QEMU 7.2's ACLINT reset (firmware/reset.c shows it through the
    # finisher's reset): mtime back to 0, mtimecmp as it was.
    clint.time = 300
    clint.wr(MSIP, 1, size=4)
    clint.wr(MTIMECMP, 400)
    clint.wr(MTIME, 9999)
    clint.clint.reset()
    assert clint.rd(MSIP, 4) == 0
    assert clint.rd(MTIMECMP) == 400
    assert clint.rd(MTIME) == 0
    clint.time = 350
    assert clint.rd(MTIME) == 50
    assert clint.clint.ticks_until_timer() == 350


# -- PLIC ----------------------------------------------------------------------

PRIORITY = 0x000000          # + 4 * source
PENDING = 0x001000           # + 4 * word
ENABLE = 0x002000            # + 0x80 * context + 4 * word
CONTEXT = 0x200000           # + 0x1000 * context
THRESHOLD, CLAIM = 0x0, 0x4
M, S = 0, 1                  # context 0: hart 0 M-mode, context 1: hart 0 S-mode


class PlicRig:
    """A PLIC whose context outputs are recorded as (context, level) events."""

    def __init__(self):
        self.events = []
        self.plic = Plic(on_context=lambda context, level: self.events.append((context, level)))

    def output(self, context):
        """The context's output as last driven."""
        return [level for ctx, level in self.events if ctx == context][-1]

    def rd(self, offset):
        return self.plic.read(offset, 4)

    def wr(self, offset, value):
        self.plic.write(offset, 4, value)

    def priority(self, source, value):
        self.wr(PRIORITY + 4 * source, value)

    def enable(self, context, *sources):
        """Enable exactly these sources for the context (whole words written)."""
        words = [0] * 4
        for source in sources:
            words[source // 32] |= 1 << source % 32
        for word, value in enumerate(words):
            self.wr(ENABLE + 0x80 * context + 4 * word, value)

    def threshold(self, context, value):
        self.wr(CONTEXT + 0x1000 * context + THRESHOLD, value)

    def claim(self, context=M):
        return self.rd(CONTEXT + 0x1000 * context + CLAIM)

    def complete(self, source, context=M):
        self.wr(CONTEXT + 0x1000 * context + CLAIM, source)

    def pending(self):
        """The pending sources, as the guest reads them from the pending words."""
        found = set()
        for word in range(4):
            bits = self.rd(PENDING + 4 * word)
            found |= {word * 32 + bit for bit in range(32) if bits >> bit & 1}
        return found

    def ready(self, source, priority=1, context=M):
        """The usual set-up: the source at `priority`, enabled for the context."""
        self.priority(source, priority)
        self.enable(context, source)


@pytest.fixture
def plic():
    return PlicRig()


def test_plic_power_on_outputs_low(plic):
    assert sorted(plic.events) == [(M, False), (S, False)]


def test_plic_power_on_registers_zero(plic):
    assert [plic.rd(PRIORITY + 4 * source) for source in range(96)] == [0] * 96
    assert plic.pending() == set()
    for context in (M, S):
        assert [plic.rd(ENABLE + 0x80 * context + 4 * word) for word in range(4)] == [0] * 4
        assert plic.rd(CONTEXT + 0x1000 * context + THRESHOLD) == 0
        assert plic.claim(context) == 0


# -- pending ---------------------------------------------------------------------

@pytest.mark.parametrize("source", [1, 10, 31, 32, 63, 64, 95])
def test_raised_line_shows_in_its_pending_bit(plic, source):
    plic.plic.set_level(source, True)
    words = [plic.rd(PENDING + 4 * word) for word in range(4)]
    expected = [0] * 4
    expected[source // 32] = 1 << source % 32
    assert words == expected


def test_lowering_the_line_clears_pending(plic):
    plic.ready(10)
    plic.plic.set_level(10, True)
    assert plic.output(M) is True
    plic.plic.set_level(10, False)
    assert plic.pending() == set()
    assert plic.output(M) is False
    assert plic.claim() == 0


def test_pending_bits_are_read_only(plic):
    plic.ready(10)
    plic.wr(PENDING, 0xFFFFFFFE)
    assert plic.pending() == set()
    assert plic.output(M) is False


# -- the context outputs -----------------------------------------------------------

def test_pending_without_enable_leaves_output_low(plic):
    plic.priority(10, 1)
    plic.plic.set_level(10, True)
    assert plic.pending() == {10}
    assert plic.output(M) is False and plic.output(S) is False


def test_priority_zero_never_interrupts(plic):
    plic.enable(M, 10)
    plic.plic.set_level(10, True)
    assert plic.output(M) is False
    assert plic.claim() == 0
    assert plic.pending() == {10}             # a failed claim leaves it pending


def test_enabled_source_above_threshold_raises_output(plic):
    plic.ready(10)
    plic.plic.set_level(10, True)
    assert plic.output(M) is True
    assert plic.output(S) is False


def test_enabling_a_pending_source_raises_output(plic):
    plic.priority(10, 1)
    plic.plic.set_level(10, True)
    assert plic.output(M) is False
    plic.enable(M, 10)
    assert plic.output(M) is True


def test_priority_must_exceed_threshold(plic):
    plic.ready(10, priority=3)
    plic.threshold(M, 3)
    plic.plic.set_level(10, True)
    assert plic.output(M) is False
    assert plic.claim() == 0
    plic.threshold(M, 2)
    assert plic.output(M) is True
    plic.threshold(M, 7)
    assert plic.output(M) is False


def test_output_driven_only_when_it_changes(plic):
    plic.ready(10)
    plic.priority(11, 1)
    plic.enable(M, 10, 11)
    start = len(plic.events)
    plic.plic.set_level(10, True)
    plic.plic.set_level(11, True)
    plic.plic.set_level(10, True)
    assert plic.events[start:] == [(M, True)]


# -- claim and complete ------------------------------------------------------------

def test_claim_returns_highest_priority_lowest_number_on_ties(plic):
    for source, priority in [(5, 2), (7, 5), (3, 5), (40, 4)]:
        plic.priority(source, priority)
        plic.plic.set_level(source, True)
    plic.enable(M, 5, 7, 3, 40)
    assert [plic.claim() for _ in range(5)] == [3, 7, 40, 5, 0]


def test_claim_clears_pending_and_lowers_output(plic):
    plic.ready(10)
    plic.plic.set_level(10, True)
    assert plic.claim() == 10
    assert plic.pending() == set()
    assert plic.output(M) is False


def test_claim_returns_zero_when_nothing_is_pending(plic):
    plic.ready(10)
    assert plic.claim() == 0


def test_claim_skips_sources_at_or_below_threshold(plic):
    plic.priority(4, 2)
    plic.priority(9, 3)
    plic.enable(M, 4, 9)
    plic.threshold(M, 2)
    plic.plic.set_level(4, True)
    plic.plic.set_level(9, True)
    assert plic.claim() == 9
    assert plic.claim() == 0
    assert plic.pending() == {4}


def test_claimed_source_is_pending_again_but_quiet_while_in_service(plic):
    # As QEMU's PLIC: pending follows each update of the line, even during
    # service, but a source in service is never offered to a context.
    plic.ready(10)
    plic.plic.set_level(10, True)
    assert plic.claim() == 10
    plic.plic.set_level(10, True)             # the device drives its line again
    assert plic.pending() == {10}
    assert plic.output(M) is False
    assert plic.claim() == 0


def test_complete_does_not_look_at_a_line_still_high(plic):
    # QEMU's PLIC, not the spec's gateway: what guests such as xv6 rely on
    # (a UART line that never drops would otherwise interrupt forever).
    plic.ready(10)
    plic.plic.set_level(10, True)
    plic.claim()
    plic.complete(10)
    assert plic.pending() == set()
    assert plic.output(M) is False
    assert plic.claim() == 0
    plic.plic.set_level(10, True)             # the next update pends it again
    assert plic.output(M) is True
    assert plic.claim() == 10


def test_complete_with_line_low_leaves_it_idle(plic):
    plic.ready(10)
    plic.plic.set_level(10, True)
    plic.claim()
    plic.plic.set_level(10, False)
    plic.complete(10)
    assert plic.pending() == set()
    assert plic.output(M) is False


def test_line_raised_again_during_service_waits_for_complete(plic):
    plic.ready(10)
    plic.plic.set_level(10, True)
    plic.claim()
    plic.plic.set_level(10, False)
    plic.plic.set_level(10, True)
    assert plic.pending() == {10}
    assert plic.output(M) is False
    plic.complete(10)
    assert plic.output(M) is True


def test_complete_of_a_source_not_in_service_is_ignored(plic):
    plic.ready(10)
    plic.plic.set_level(10, True)
    plic.claim()
    plic.ready(11)
    plic.enable(M, 10, 11)
    plic.complete(11)                         # never claimed
    plic.plic.set_level(10, True)
    assert plic.claim() == 0                  # 10 is still in service


def test_claim_by_one_context_takes_it_from_the_other(plic):
    plic.priority(10, 1)
    plic.enable(M, 10)
    plic.enable(S, 10)
    plic.plic.set_level(10, True)
    assert plic.output(M) is True and plic.output(S) is True
    assert plic.claim(S) == 10
    assert plic.output(M) is False and plic.output(S) is False
    assert plic.claim(M) == 0


# -- register widths and ranges ----------------------------------------------------

@pytest.mark.parametrize("written, read", [(0x7, 7), (0xF, 7), (0x8, 0), (0xFFFFFFFB, 3)])
def test_priority_is_three_bits(plic, written, read):
    plic.priority(10, written)
    assert plic.rd(PRIORITY + 4 * 10) == read


def test_priority_that_masks_to_zero_never_interrupts(plic):
    plic.ready(10, priority=8)
    plic.plic.set_level(10, True)
    assert plic.output(M) is False


def test_threshold_is_three_bits(plic):
    plic.threshold(S, 0xF)
    assert plic.rd(CONTEXT + 0x1000 * S + THRESHOLD) == 7


def test_source_0_has_no_priority(plic):
    plic.wr(PRIORITY, 7)
    assert plic.rd(PRIORITY) == 0


def test_source_0_cannot_be_enabled(plic):
    plic.wr(ENABLE, 0xFFFFFFFF)
    assert plic.rd(ENABLE) == 0xFFFFFFFE


def test_source_0_line_is_ignored(plic):
    plic.wr(ENABLE, 0xFFFFFFFF)
    plic.plic.set_level(0, True)
    assert plic.rd(PENDING) == 0
    assert plic.output(M) is False
    assert plic.claim() == 0


def test_complete_of_source_0_or_out_of_range_is_harmless(plic):
    plic.ready(10)
    plic.plic.set_level(10, True)
    plic.claim()
    plic.plic.set_level(10, True)             # pending again, but in service
    for source in (0, 96, 1000, 0xFFFFFFFF):
        plic.complete(source)
    assert plic.claim() == 0                  # 10 is still in service
    plic.complete(10)
    assert plic.claim() == 10


@pytest.mark.parametrize("source", [96, 127, 1023])
def test_out_of_range_source_has_no_priority(plic, source):
    plic.wr(PRIORITY + 4 * source, 7)
    assert plic.rd(PRIORITY + 4 * source) == 0


def test_out_of_range_sources_cannot_be_enabled(plic):
    for word in range(4):
        plic.wr(ENABLE + 4 * word, 0xFFFFFFFF)
    words = [plic.rd(ENABLE + 4 * word) for word in range(4)]
    assert words == [0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFF, 0]


@pytest.mark.parametrize("source", [96, -1])
def test_out_of_range_line_is_ignored(plic, source):
    for number in range(1, 96):
        plic.priority(number, 7)
    plic.enable(M, *range(1, 96))
    plic.plic.set_level(source, True)
    assert plic.pending() == set()
    assert plic.output(M) is False


def test_context_beyond_the_last_reads_zero_and_ignores_writes(plic):
    plic.ready(10)
    plic.plic.set_level(10, True)
    plic.wr(ENABLE + 0x80 * 2, 0xFFFFFFFF)
    plic.wr(CONTEXT + 0x1000 * 2 + THRESHOLD, 7)
    assert plic.rd(ENABLE + 0x80 * 2) == 0
    assert plic.rd(CONTEXT + 0x1000 * 2 + THRESHOLD) == 0
    assert plic.rd(CONTEXT + 0x1000 * 2 + CLAIM) == 0
    assert plic.pending() == {10}             # that claim took nothing


# -- two contexts --------------------------------------------------------------------

def test_enables_are_per_context(plic):
    plic.priority(10, 1)
    plic.enable(S, 10)
    plic.plic.set_level(10, True)
    assert plic.output(M) is False and plic.output(S) is True
    assert plic.rd(ENABLE) == 0
    assert plic.rd(ENABLE + 0x80) == 1 << 10
    assert plic.claim(M) == 0
    assert plic.claim(S) == 10


def test_thresholds_are_per_context(plic):
    plic.priority(10, 3)
    plic.enable(M, 10)
    plic.enable(S, 10)
    plic.threshold(M, 3)
    plic.plic.set_level(10, True)
    assert plic.output(M) is False and plic.output(S) is True
    assert plic.rd(CONTEXT + THRESHOLD) == 3
    assert plic.rd(CONTEXT + 0x1000 + THRESHOLD) == 0


def test_contexts_claim_their_own_sources(plic):
    plic.priority(10, 1)
    plic.priority(1, 1)
    plic.enable(M, 10)
    plic.enable(S, 1)
    plic.plic.set_level(10, True)
    plic.plic.set_level(1, True)
    assert plic.claim(M) == 10                # source 1 is not M's
    assert plic.output(S) is True
    assert plic.claim(S) == 1


# -- reset -----------------------------------------------------------------------------

def test_plic_reset_lowers_both_outputs(plic):
    plic.priority(10, 1)
    plic.enable(M, 10)
    plic.enable(S, 10)
    plic.plic.set_level(10, True)
    assert plic.output(M) is True and plic.output(S) is True
    plic.plic.reset()
    assert plic.output(M) is False and plic.output(S) is False


def test_plic_reset_clears_every_register(plic):
    plic.priority(10, 5)
    plic.priority(95, 7)
    plic.enable(M, 10, 95)
    plic.enable(S, 10)
    plic.threshold(M, 1)
    plic.threshold(S, 4)
    plic.plic.set_level(10, True)
    plic.plic.set_level(95, True)
    plic.plic.reset()
    assert plic.rd(PRIORITY + 4 * 10) == 0 and plic.rd(PRIORITY + 4 * 95) == 0
    assert plic.pending() == set()
    for context in (M, S):
        assert [plic.rd(ENABLE + 0x80 * context + 4 * word) for word in range(4)] == [0] * 4
        assert plic.rd(CONTEXT + 0x1000 * context + THRESHOLD) == 0
    plic.ready(10)
    assert plic.claim() == 0                  # the old line level is forgotten too


def test_plic_reset_ends_service(plic):
    plic.ready(10)
    plic.plic.set_level(10, True)
    assert plic.claim() == 10
    plic.plic.reset()
    plic.ready(10)
    plic.plic.set_level(10, True)             # no complete: the claim died with the reset
    assert plic.pending() == {10}
    assert plic.claim() == 10
