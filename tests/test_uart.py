"""Unit tests of the 16550A UART model, minivm.devices.uart.Uart16550.

The tests drive the real class through the interface the bus uses --
read(offset, size) and write(offset, size, value) -- plus receive(data), the
host side.  Transmitted bytes are collected in a list and every level put on
the interrupt line is recorded, so each test checks what a guest (or the
interrupt controller) would actually see.

Power-on values are the ones QEMU 7.2's `virt` board shows (measured on QEMU);
register behaviour follows the PC16550D datasheet.
"""
import pytest

from minivm.devices.uart import Uart16550

# Register offsets, spelled out here so the tests do not trust the module's own.
RBR = THR = DLL = 0
IER = DLM = 1
IIR = FCR = 2
LCR = 3
MCR = 4
LSR = 5
MSR = 6
SCR = 7

DLAB = 0x80
LSR_DR, LSR_OE, LSR_THRE, LSR_TEMT = 0x01, 0x02, 0x20, 0x40
IER_RDI, IER_THRI, IER_RLSI = 0x01, 0x02, 0x04
FIFO_ON = 0x01


class Rig:
    """A UART wired to a list of sent bytes and a list of irq levels."""

    def __init__(self):
        self.sent = []
        self.levels = []
        self.uart = Uart16550(output=self.sent.append, irq=self.levels.append)

    def rd(self, offset):
        return self.uart.read(offset, 1)

    def wr(self, offset, value):
        self.uart.write(offset, 1, value)

    @property
    def line(self):
        """The interrupt line's current level, as last driven."""
        return self.levels[-1]

    def output(self):
        return b"".join(self.sent)


@pytest.fixture
def rig():
    return Rig()


# -- power-on values (QEMU 7.2 virt) -----------------------------------------

@pytest.mark.parametrize("offset, value", [
    (IER, 0x00), (IIR, 0x01), (LCR, 0x00), (MCR, 0x08),
    (LSR, 0x60), (MSR, 0xB0), (SCR, 0x00),
])
def test_power_on_register(rig, offset, value):
    assert rig.rd(offset) == value


def test_power_on_divisor_latch(rig):
    rig.wr(LCR, DLAB)
    assert (rig.rd(DLL), rig.rd(DLM)) == (0x0C, 0x00)


def test_power_on_irq_line_low(rig):
    assert rig.levels == [False]


# -- DLAB and the divisor latch ------------------------------------------------

def test_dlab_offsets_reach_divisor_latch(rig):
    rig.wr(LCR, DLAB | 0x03)
    rig.wr(DLL, 0x01)
    rig.wr(DLM, 0x02)
    assert (rig.rd(DLL), rig.rd(DLM)) == (0x01, 0x02)
    assert rig.uart.divisor == 0x0201


def test_dlab_write_to_offset_0_does_not_transmit(rig):
    rig.wr(LCR, DLAB)
    rig.wr(DLL, ord("X"))
    assert rig.sent == []


def test_dlab_write_to_offset_1_leaves_ier_alone(rig):
    rig.wr(LCR, DLAB)
    rig.wr(DLM, 0x0F)
    rig.wr(LCR, 0x03)
    assert rig.rd(IER) == 0x00


def test_clearing_dlab_makes_offset_0_thr_again(rig):
    rig.wr(LCR, DLAB)
    rig.wr(DLL, 0x01)
    rig.wr(LCR, 0x03)
    rig.wr(THR, ord("A"))
    assert rig.output() == b"A"
    rig.wr(LCR, DLAB)
    assert rig.rd(DLL) == 0x01   # the THR write did not touch the latch


def test_register_name_follows_dlab(rig):
    names = rig.uart.register_name
    assert (names(0, True), names(0, False), names(1, True)) == ("THR", "RBR", "IER")
    rig.wr(LCR, DLAB)
    assert (names(0, True), names(0, False), names(1, False)) == ("DLL", "DLL", "DLM")
    assert names(2, True) == "FCR" and names(2, False) == "IIR"


# -- transmit and scratch ------------------------------------------------------

def test_thr_write_sends_exactly_that_byte(rig):
    rig.wr(THR, 0x41)
    rig.wr(THR, 0x1FF)          # only the low byte is a register write
    assert rig.sent == [b"A", b"\xff"]


def test_lsr_keeps_thre_and_temt_after_transmit(rig):
    rig.wr(THR, ord("A"))
    assert rig.rd(LSR) & (LSR_THRE | LSR_TEMT) == LSR_THRE | LSR_TEMT


def test_scratch_round_trip(rig):
    rig.wr(SCR, 0x5A)
    assert rig.rd(SCR) == 0x5A
    rig.wr(SCR, 0xA5)
    assert rig.rd(SCR) == 0xA5


# -- receive -------------------------------------------------------------------

def test_received_bytes_come_out_of_rbr_in_order(rig):
    rig.wr(FCR, FIFO_ON)
    assert rig.uart.receive(b"abc") == 3
    assert [rig.rd(RBR) for _ in range(3)] == [ord("a"), ord("b"), ord("c")]


def test_lsr_dr_set_while_data_waits_and_cleared_when_drained(rig):
    rig.wr(FCR, FIFO_ON)
    assert rig.rd(LSR) & LSR_DR == 0
    rig.uart.receive(b"xy")
    assert rig.rd(LSR) & LSR_DR
    rig.rd(RBR)
    assert rig.rd(LSR) & LSR_DR      # one byte still waits
    rig.rd(RBR)
    assert rig.rd(LSR) & LSR_DR == 0


def test_without_fifo_capacity_is_one_byte(rig):
    rig.uart.receive(b"ab")
    rig.rd(RBR)
    assert rig.rd(LSR) & LSR_DR == 0     # only one byte was held


def test_without_fifo_rbr_read_again_gives_the_last_byte(rig):
    # PC16550D and QEMU: RBR holds the last byte received until the next one
    # (firmware/uart_rbr.c shows it on QEMU).
    rig.uart.receive(b"A")
    assert [rig.rd(RBR) for _ in range(3)] == [ord("A")] * 3
    assert rig.rd(LSR) & LSR_DR == 0
    rig.uart.receive(b"BC")                  # "C" overruns "B"
    assert [rig.rd(RBR), rig.rd(RBR)] == [ord("C"), ord("C")]


def test_with_fifo_rbr_read_empty_gives_zero(rig):
    rig.uart.receive(b"A")                   # held with the FIFOs off
    rig.rd(RBR)
    rig.wr(FCR, FIFO_ON)
    rig.uart.receive(b"D")
    assert [rig.rd(RBR), rig.rd(RBR), rig.rd(RBR)] == [ord("D"), 0, 0]
    rig.wr(FCR, 0)                           # off again: the holding register kept "A"
    assert rig.rd(RBR) == ord("A")


def test_second_byte_without_fifo_sets_overrun(rig):
    rig.uart.receive(b"a")
    assert rig.rd(LSR) & LSR_OE == 0
    rig.uart.receive(b"b")
    assert rig.rd(LSR) & LSR_OE


def test_reading_lsr_clears_overrun(rig):
    rig.uart.receive(b"ab")
    assert rig.rd(LSR) & LSR_OE
    assert rig.rd(LSR) & LSR_OE == 0
    assert rig.rd(LSR) & LSR_DR      # the data waiting is not lost by the read


def test_overrun_without_fifo_keeps_newest_byte(rig):
    # PC16550D LSR bit 1: the new character destroys the one in RBR.
    rig.uart.receive(b"a")
    rig.uart.receive(b"b")
    assert rig.rd(RBR) == ord("b")


def test_with_fifo_capacity_is_sixteen(rig):
    rig.wr(FCR, FIFO_ON)
    assert rig.uart.receive(bytes(range(20))) == 16
    assert rig.rd(LSR) & LSR_OE
    assert [rig.rd(RBR) for _ in range(16)] == list(range(16))
    assert rig.rd(LSR) & LSR_DR == 0


def test_fcr_bit1_clears_rx_fifo(rig):
    rig.wr(FCR, FIFO_ON)
    rig.uart.receive(b"abc")
    rig.wr(FCR, FIFO_ON | 0x02)
    assert rig.rd(LSR) & LSR_DR == 0
    rig.uart.receive(b"z")
    assert rig.rd(RBR) == ord("z")


def test_iir_shows_fifo_bits_when_enabled(rig):
    rig.wr(FCR, FIFO_ON)
    assert rig.rd(IIR) == 0xC1
    rig.wr(FCR, 0x00)
    assert rig.rd(IIR) == 0x01


# -- interrupts ----------------------------------------------------------------

def test_rdi_with_data_raises_line(rig):
    rig.wr(IER, IER_RDI)
    assert rig.line is False
    rig.uart.receive(b"a")
    assert rig.rd(IIR) == 0x04
    assert rig.line is True


def test_draining_rx_lowers_rdi(rig):
    rig.wr(IER, IER_RDI)
    rig.uart.receive(b"a")
    rig.rd(RBR)
    assert rig.rd(IIR) == 0x01
    assert rig.line is False


def test_enabling_rdi_with_data_waiting_raises_line(rig):
    rig.uart.receive(b"a")
    assert rig.line is False
    rig.wr(IER, IER_RDI)
    assert rig.line is True


def test_enabling_thri_with_thr_empty_interrupts(rig):
    rig.wr(IER, IER_THRI)
    assert rig.line is True
    assert rig.rd(IIR) == 0x02


def test_reading_iir_acknowledges_thri(rig):
    rig.wr(IER, IER_THRI)
    assert rig.rd(IIR) == 0x02
    assert rig.rd(IIR) == 0x01
    assert rig.line is False


def test_thr_write_with_thri_raises_line_again(rig):
    rig.wr(IER, IER_THRI)
    rig.rd(IIR)
    rig.wr(THR, ord("A"))
    assert rig.line is True
    assert rig.rd(IIR) == 0x02


def test_rlsi_beats_rdi(rig):
    rig.wr(IER, IER_RLSI | IER_RDI)
    rig.uart.receive(b"ab")          # overrun, with data waiting
    assert rig.rd(IIR) == 0x06
    rig.rd(LSR)                      # clears OE
    assert rig.rd(IIR) == 0x04


def test_rdi_beats_thri(rig):
    rig.wr(IER, IER_RDI | IER_THRI)
    rig.uart.receive(b"a")
    assert rig.rd(IIR) == 0x04
    rig.rd(RBR)
    assert rig.rd(IIR) == 0x02       # THRI was pending all along


def test_overrun_without_rlsi_enabled_does_not_interrupt(rig):
    rig.uart.receive(b"ab")
    assert rig.rd(IIR) == 0x01
    assert rig.line is False


# -- loopback ------------------------------------------------------------------

def test_loopback_thr_write_is_received_not_sent(rig):
    rig.wr(MCR, 0x10)
    rig.wr(THR, ord("L"))
    assert rig.sent == []
    assert rig.rd(LSR) & LSR_DR
    assert rig.rd(RBR) == ord("L")


def test_loopback_msr_reflects_all_mcr_outputs(rig):
    rig.wr(MCR, 0x1F)
    assert rig.rd(MSR) & 0xF0 == 0xF0


@pytest.mark.parametrize("mcr, msr_bit", [
    (0x01, 0x20),   # DTR  -> DSR
    (0x02, 0x10),   # RTS  -> CTS
    (0x04, 0x40),   # OUT1 -> RI
    (0x08, 0x80),   # OUT2 -> DCD
])
def test_loopback_msr_wiring(rig, mcr, msr_bit):
    rig.wr(MCR, 0x10 | mcr)
    assert rig.rd(MSR) & 0xF0 == msr_bit


def test_leaving_loopback_sends_again(rig):
    rig.wr(MCR, 0x10)
    rig.wr(MCR, 0x08)
    rig.wr(THR, ord("A"))
    assert rig.output() == b"A"
    assert rig.rd(MSR) == 0xB0


# -- reset ---------------------------------------------------------------------

def test_reset_restores_power_on_values(rig):
    rig.wr(FCR, FIFO_ON)
    rig.wr(IER, IER_RDI | IER_THRI)
    rig.wr(MCR, 0x1F)
    rig.wr(SCR, 0x77)
    rig.wr(LCR, DLAB | 0x03)
    rig.wr(DLL, 0x01)
    rig.wr(DLM, 0x02)
    rig.uart.receive(b"abc")
    rig.uart.reset()
    got = {name: rig.rd(off) for name, off in
           [("IER", IER), ("IIR", IIR), ("LCR", LCR), ("MCR", MCR),
            ("LSR", LSR), ("MSR", MSR), ("SCR", SCR)]}
    assert got == {"IER": 0x00, "IIR": 0x01, "LCR": 0x00, "MCR": 0x08,
                   "LSR": 0x60, "MSR": 0xB0, "SCR": 0x00}
    rig.wr(LCR, DLAB)
    assert (rig.rd(DLL), rig.rd(DLM)) == (0x0C, 0x00)


def test_reset_empties_rx_fifo(rig):
    rig.uart.receive(b"a")
    rig.uart.reset()
    assert rig.rd(RBR) == 0
    assert rig.uart.receive(b"b") == 1   # room again


def test_reset_lowers_irq_line(rig):
    rig.wr(IER, IER_RDI)
    rig.uart.receive(b"a")
    assert rig.line is True
    rig.uart.reset()
    assert rig.line is False
