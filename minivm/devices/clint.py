"""CLINT, the core-local interruptor, at 0x0200_0000 as on QEMU `virt`.

It gives hart 0 a software interrupt (msip) and a timer (mtime counts up;
the timer interrupt is pending while mtime >= mtimecmp).  Layout from the
SiFive CLINT: one hart here, so one msip and one mtimecmp.  Every register
may be read or written whole (8 bytes) or in 4-byte halves, little-endian.

mtime is not host time: it comes from the vCPU's instruction clock
(minivm/cpu/clock.py), at a fixed number of instructions per tick, so every
run sees the same times.  See `TIMEBASE_HZ` and `INSTRUCTIONS_PER_TICK`.

Power-on and reset follow QEMU 7.2's CLINT (hw/intc/riscv_aclint.c), which
kernels written on QEMU rely on; the ACLINT spec leaves mtimecmp unknown.
At power-on mtimecmp is 0, so the timer interrupt is pending from the first
instruction (mtime >= 0): a kernel that writes only the low 32 bits of
mtimecmp still gets its timer.  A machine reset clears msip and sets mtime
back to 0, and keeps mtimecmp.
"""
from minivm.devices.device import Device

# -- registers (offset, width) -------------------------------------------------
MSIP = 0x0000        # 4 bytes; bit 0 raises the machine software interrupt
MTIMECMP = 0x4000    # 8 bytes; the timer interrupt is due when mtime >= mtimecmp
MTIME = 0xBFF8       # 8 bytes; the time, in ticks since power-on

WIDTHS = {MSIP: 4, MTIMECMP: 8, MTIME: 8}

TIMEBASE_HZ = 10_000_000          # 10 MHz, as on QEMU `virt` (its device tree says so)
# The virtual hart runs 100 M instructions per second: about what Unicorn
# runs a spinning kernel at (with the time counter's hook), so a guest that
# waits for its timer sees guest time pass about as fast as on QEMU
# (benchmarks/bench_timer_rate.py measures it).
INSTRUCTIONS_PER_TICK = 10
# Reading the clock takes time: every guest read of mtime (and of the time
# CSR) moves virtual time on by this much, about what the read costs the
# host, so a guest that busy-waits on the clock also sees time pass as on
# QEMU.  (On real hardware, too, an uncached device read takes hundreds of cycles.)
CLOCK_READ_TICKS = 50
ALL_ONES = (1 << 64) - 1


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
        self.msip = 0
        self.mtimecmp = 0
        self.mtime_offset = 0     # what guest writes to mtime added to the clock

    def reset(self):
        self.msip = 0
        self.mtime_offset = -self.now() & ALL_ONES    # mtime reads 0 again

    # -- state the board asks about ------------------------------------------------

    @property
    def mtime(self):
        return (self.now() + self.mtime_offset) & ALL_ONES

    def timer_pending(self):
        return self.mtime >= self.mtimecmp

    def software_pending(self):
        return bool(self.msip & 1)

    def ticks_until_timer(self):
        """Ticks from now until the timer is due (0 if due).  All ones is a
        time like any other: the board decides what is too far to come."""
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
            return (old & ~mask | (value << shift) & mask) & ALL_ONES

        if register == MSIP:
            self.msip = merged(self.msip) & 1
        elif register == MTIMECMP:
            self.mtimecmp = merged(self.mtimecmp)
        else:
            self.mtime_offset = (merged(self.mtime) - self.now()) & ALL_ONES
        self.on_change()

    def _locate(self, offset, size):
        """(register offset, bit shift) of an access, or (None, 0) for a hole."""
        for base, width in WIDTHS.items():
            if base <= offset and offset + size <= base + width:
                return base, 8 * (offset - base)
        return None, 0
