"""16550A UART (the PC serial port), as QEMU's `virt` board has at 0x1000_0000.

The guest moves every byte through a register, one trap per access: this is
the "emulated device" model at its purest.  Register layout and bit meanings
follow the National Semiconductor PC16550D datasheet; power-on values follow
QEMU's hw/char/serial.c, checked against QEMU by tests/test_uart.py.

Transmission is instant: a byte written to THR goes to the output at once,
so THR is always empty again (LSR.THRE and LSR.TEMT stay set).

Reading RBR with nothing new waiting: with the FIFOs off, RBR is a holding
register and gives the last byte received again (the datasheet's RBR, and
QEMU); with them on, an empty FIFO reads 0 (QEMU).  firmware/uart_rbr.c
shows both on QEMU and minivm.
"""
from collections import deque

from minivm.devices.device import Device

# -- register offsets (each register is one byte) -------------------------
RBR = 0   # receive buffer (read, DLAB=0)
THR = 0   # transmit holding (write, DLAB=0)
DLL = 0   # divisor latch, low byte (DLAB=1)
IER = 1   # interrupt enable (DLAB=0)
DLM = 1   # divisor latch, high byte (DLAB=1)
IIR = 2   # interrupt identification (read)
FCR = 2   # FIFO control (write)
LCR = 3   # line control
MCR = 4   # modem control
LSR = 5   # line status
MSR = 6   # modem status
SCR = 7   # scratch

# -- IER: which events may interrupt ---------------------------------------
IER_RDI = 0x01    # received data available
IER_THRI = 0x02   # transmit holding register empty
IER_RLSI = 0x04   # receiver line status (overrun)
IER_MSI = 0x08    # modem status change

# -- IIR: the highest-priority pending interrupt -----------------------------
IIR_NO_INT = 0x01       # nothing pending
IIR_MSI = 0x00          # modem status (lowest priority)
IIR_THRI = 0x02         # THR empty
IIR_RDI = 0x04          # received data available
IIR_RLSI = 0x06         # line status (highest priority)
IIR_FIFO_ENABLED = 0xC0  # both bits set while the FIFOs are on

# -- FCR ----------------------------------------------------------------------
FCR_ENABLE = 0x01      # FIFOs on
FCR_CLEAR_RX = 0x02    # empty the receive FIFO
FCR_CLEAR_TX = 0x04    # empty the transmit FIFO
FCR_TRIGGER = 0xC0     # receive interrupt level: 1, 4, 8 or 14 bytes (kept, not used)

# -- LCR ----------------------------------------------------------------------
LCR_DLAB = 0x80        # offsets 0 and 1 reach the divisor latch

# -- MCR ----------------------------------------------------------------------
MCR_DTR = 0x01
MCR_RTS = 0x02
MCR_OUT1 = 0x04
MCR_OUT2 = 0x08
MCR_LOOP = 0x10        # loopback: transmitted bytes come back to the receiver
MCR_MASK = 0x1F

# -- LSR ----------------------------------------------------------------------
LSR_DR = 0x01          # data ready in RBR / the receive FIFO
LSR_OE = 0x02          # overrun: a byte arrived with the FIFO full and was lost
LSR_THRE = 0x20        # THR empty
LSR_TEMT = 0x40        # transmitter empty
LSR_ERRORS = 0x1E      # OE, PE, FE, BI: cleared by reading LSR

# -- MSR ----------------------------------------------------------------------
MSR_CTS = 0x10
MSR_DSR = 0x20
MSR_RI = 0x40
MSR_DCD = 0x80
MSR_NO_MODEM = MSR_DCD | MSR_DSR | MSR_CTS   # what QEMU shows with no modem attached

FIFO_SIZE = 16

# Power-on values (QEMU serial_reset): OUT2 set, divisor 12.
RESET_MCR = MCR_OUT2
RESET_DIVISOR = 12

READ_NAMES = {RBR: "RBR", IER: "IER", IIR: "IIR", LCR: "LCR", MCR: "MCR",
              LSR: "LSR", MSR: "MSR", SCR: "SCR"}
WRITE_NAMES = {THR: "THR", IER: "IER", FCR: "FCR", LCR: "LCR", MCR: "MCR",
               LSR: "LSR", MSR: "MSR", SCR: "SCR"}


class Uart16550(Device):
    size = 0x100

    def __init__(self, output=None, irq=None):
        """output(bytes) receives transmitted bytes; irq(level) drives the line."""
        super().__init__()
        self.output = output or (lambda data: None)
        self.irq = irq or (lambda level: None)
        self.rx_fifo = deque()
        self.reset()

    def reset(self):
        self.ier = 0
        self.lcr = 0
        self.bank = 0          # DLAB: which registers offsets 0 and 1 reach
        self.mcr = RESET_MCR
        self.lsr = LSR_THRE | LSR_TEMT
        self.msr = MSR_NO_MODEM
        self.scr = 0
        self.divisor = RESET_DIVISOR
        self.fcr = 0
        self.rbr = 0           # the holding register: the last byte received with the FIFOs off
        self.rx_fifo.clear()
        self.thr_interrupt = False   # "THR empty" pending until IIR is read or THR written
        self.update_irq()

    # -- guest accesses --------------------------------------------------------

    def read(self, offset, size):
        dlab = self.lcr & LCR_DLAB
        if offset == RBR:
            return self.divisor & 0xFF if dlab else self._read_rbr()
        if offset == IER:
            return self.divisor >> 8 if dlab else self.ier
        if offset == IIR:
            return self._read_iir()
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            return self._read_lsr()
        if offset == MSR:
            return self._read_msr()
        if offset == SCR:
            return self.scr
        return 0

    def write(self, offset, size, value):
        value &= 0xFF
        dlab = self.lcr & LCR_DLAB
        if offset == THR:
            if dlab:
                self.divisor = (self.divisor & 0xFF00) | value
            else:
                self._transmit(value)
        elif offset == IER:
            if dlab:
                self.divisor = (self.divisor & 0x00FF) | (value << 8)
            else:
                self._write_ier(value)
        elif offset == FCR:
            self._write_fcr(value)
        elif offset == LCR:
            self.lcr = value
            self.bank = value & LCR_DLAB
        elif offset == MCR:
            self.mcr = value & MCR_MASK
        elif offset == SCR:
            self.scr = value
        # LSR and MSR are read-only on the 16550; writes are ignored.

    def register_name(self, offset, is_write, bank=None):
        dlab = self.bank if bank is None else bank
        if dlab and offset in (DLL, DLM):
            return "DLL" if offset == DLL else "DLM"
        names = WRITE_NAMES if is_write else READ_NAMES
        return names.get(offset, f"+0x{offset:x}")

    def describe(self, offset, value, is_write):
        if offset in (THR, RBR) and not self.lcr & LCR_DLAB:
            return repr(chr(value)) if 0x20 <= value < 0x7F else ""
        return ""

    # -- the host side: bytes arriving from the outside world --------------------

    def receive(self, data):
        """Put bytes into the receive FIFO; returns how many it took."""
        taken = 0
        for byte in data:
            if len(self.rx_fifo) >= self._rx_capacity():
                self.lsr |= LSR_OE
                if self.fcr & FCR_ENABLE:
                    break             # a full FIFO drops the new byte
                self.rx_fifo.clear()  # without FIFO the new byte overwrites RBR
            self.rx_fifo.append(byte)
            if not self.fcr & FCR_ENABLE:
                self.rbr = byte
            taken += 1
        if taken:
            self.lsr |= LSR_DR
        self.update_irq()
        return taken

    def rx_room(self):
        return self._rx_capacity() - len(self.rx_fifo)

    # -- register behaviour --------------------------------------------------

    def _rx_capacity(self):
        return FIFO_SIZE if self.fcr & FCR_ENABLE else 1

    def _read_rbr(self):
        if not self.rx_fifo:
            return 0 if self.fcr & FCR_ENABLE else self.rbr
        value = self.rx_fifo.popleft()
        self.payload_bytes += 1
        if not self.rx_fifo:
            self.lsr &= ~LSR_DR
        self.update_irq()
        return value

    def _transmit(self, value):
        self.thr_interrupt = False
        if self.mcr & MCR_LOOP:
            self.receive(bytes([value]))
        else:
            self.output(bytes([value]))
            self.payload_bytes += 1
        # The byte left at once, so THR is empty again.
        self.thr_interrupt = bool(self.ier & IER_THRI)
        self.update_irq()

    def _write_ier(self, value):
        enabling_thri = value & IER_THRI and not self.ier & IER_THRI
        self.ier = value & 0x0F
        if enabling_thri and self.lsr & LSR_THRE:
            self.thr_interrupt = True   # enabling THRI with THR empty interrupts at once
        self.update_irq()

    def _write_fcr(self, value):
        if (value ^ self.fcr) & FCR_ENABLE or value & FCR_CLEAR_RX:
            self.rx_fifo.clear()
            self.lsr &= ~LSR_DR
        self.fcr = value & (FCR_ENABLE | FCR_TRIGGER)
        self.update_irq()

    def _read_iir(self):
        iir = self._pending_interrupt()
        if iir == IIR_THRI:
            self.thr_interrupt = False   # reading IIR acknowledges "THR empty"
            self.update_irq()
        if self.fcr & FCR_ENABLE:
            iir |= IIR_FIFO_ENABLED
        return iir

    def _read_lsr(self):
        value = self.lsr
        if self.lsr & LSR_ERRORS:
            self.lsr &= ~LSR_ERRORS
            self.update_irq()
        return value

    def _read_msr(self):
        if self.mcr & MCR_LOOP:
            # Loopback wires the modem control outputs to the status inputs.
            return ((self.mcr & (MCR_OUT1 | MCR_OUT2)) << 4 | (self.mcr & MCR_RTS) << 3
                    | (self.mcr & MCR_DTR) << 5)
        return self.msr

    # -- the interrupt line ----------------------------------------------------

    def _rx_interrupt_due(self):
        # Below the FIFO trigger level the real chip waits for a character
        # timeout; minivm has no line timing, so any waiting byte is due at once.
        return bool(self.rx_fifo)

    def _pending_interrupt(self):
        """IIR's interrupt ID: the highest-priority enabled, pending event."""
        if self.ier & IER_RLSI and self.lsr & LSR_ERRORS:
            return IIR_RLSI
        if self.ier & IER_RDI and self._rx_interrupt_due():
            return IIR_RDI
        if self.ier & IER_THRI and self.thr_interrupt:
            return IIR_THRI
        if self.ier & IER_MSI and self.msr & 0x0F:
            return IIR_MSI
        return IIR_NO_INT

    def update_irq(self):
        # Every update reaches the PLIC, not only changes: QEMU's PLIC
        # pends a source when its device updates the line (minivm/devices/plic.py).
        self.irq(self._pending_interrupt() != IIR_NO_INT)
