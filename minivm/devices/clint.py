"""CLINT, the core-local interruptor, at 0x0200_0000 as on QEMU `virt`.

It gives hart 0 a software interrupt (msip) and a timer (mtime counts up;
the timer interrupt is pending while mtime >= mtimecmp).  Layout from the
SiFive CLINT: one hart here, so one msip and one mtimecmp.  Every register
may be read or written whole (8 bytes) or in 4-byte halves, little-endian.

mtime is not host time: it comes from the vCPU's instruction clock
(minivm/cpu/clock.py), at a fixed number of instructions per tick, so every
run sees the same times.  See `TIMEBASE_HZ` and `INSTRUCTIONS_PER_TICK`.
"""
from minivm.devices.device import Device

# -- registers (offset, width) -------------------------------------------------
MSIP = 0x0000        # 4 bytes; bit 0 raises the machine software interrupt
MTIMECMP = 0x4000    # 8 bytes; the timer interrupt is due when mtime >= mtimecmp
MTIME = 0xBFF8       # 8 bytes; the time, in ticks since power-on

WIDTHS = {MSIP: 4, MTIMECMP: 8, MTIME: 8}

TIMEBASE_HZ = 10_000_000          # 10 MHz, as on QEMU `virt` (its device tree says so)
INSTRUCTIONS_PER_TICK = 100       # the virtual hart runs 1,000 M instructions per second
NEVER = (1 << 64) - 1             # mtimecmp at power-on: no timer armed


class Clint(Device):
    size = 0x10000
    REGISTERS = {MSIP: "msip", MTIMECMP: "mtimecmp", MTIMECMP + 4: "mtimecmp_hi",
                 MTIME: "mtime", MTIME + 4: "mtime_hi"}

    def __init__(self, now, on_change=None, on_time_read=None):
        """now() -> mtime in ticks.  on_change() is called when the guest
        writes a register; on_time_read() when it reads mtime."""
        super().__init__()
        self.now = now
        self.on_change = on_change or (lambda: None)
        self.on_time_read = on_time_read or (lambda: None)
        self.reset()

    def reset(self):
        self.msip = 0
        self.mtimecmp = NEVER
        self.mtime_offset = 0     # what guest writes to mtime added to the clock

    # -- state the board asks about ------------------------------------------------

    @property
    def mtime(self):
        return (self.now() + self.mtime_offset) & NEVER

    def timer_pending(self):
        return self.mtime >= self.mtimecmp

    def software_pending(self):
        return bool(self.msip & 1)

    def ticks_until_timer(self):
        """Ticks from now until the timer is due (0 if due), or None if never."""
        if self.mtimecmp == NEVER:
            return None
        return max(0, self.mtimecmp - self.mtime)

    # -- guest accesses ------------------------------------------------------------

    def read(self, offset, size):
        register, shift = self._locate(offset, size)
        if register is None:
            return 0
        if register == MTIME:
            self.on_time_read()
        value = {MSIP: self.msip, MTIMECMP: self.mtimecmp, MTIME: self.mtime}[register]
        return (value >> shift) & ((1 << (8 * size)) - 1)

    def write(self, offset, size, value):
        register, shift = self._locate(offset, size)
        if register is None:
            return
        mask = ((1 << (8 * size)) - 1) << shift

        def merged(old):          # the register with the written bytes replaced
            return (old & ~mask | (value << shift) & mask) & NEVER

        if register == MSIP:
            self.msip = merged(self.msip) & 1
        elif register == MTIMECMP:
            self.mtimecmp = merged(self.mtimecmp)
        else:
            self.mtime_offset = (merged(self.mtime) - self.now()) & NEVER
        self.on_change()

    def _locate(self, offset, size):
        """(register offset, bit shift) of an access, or (None, 0) for a hole."""
        for base, width in WIDTHS.items():
            if base <= offset and offset + size <= base + width:
                return base, 8 * (offset - base)
        return None, 0
