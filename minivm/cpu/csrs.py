"""CSRs Unicorn lacks, trap-and-emulated by the host.

QEMU `virt` harts have them; Unicorn 2.1.4 raises illegal instruction for
each (and so the host sees the trap first):

    time, timeh            mtime, read-only (Zicntr)
    stimecmp, stimecmph    S-mode timer compare (Sstc): the supervisor timer
                           interrupt (mip.STIP) is pending while time >= stimecmp
    menvcfg, menvcfgh      M-mode environment configuration; STCE (bit 63)
                           lets S-mode use stimecmp
    senvcfg                S-mode environment configuration

Current xv6-riscv's start.c sets menvcfg.STCE and mcounteren.TM and arms
stimecmp; its S-mode timer handler reads time and writes stimecmp.

When a csrrw/csrrs/csrrc(i) of one of these traps, `emulate()` does what the
hardware would: the access checks of the Privileged spec (2.1, and 3.1.11
for mcounteren; the Sstc spec for stimecmp), the read, the write through
the register's writable bits, rd, and pc past the instruction.  An access
the hardware would refuse stays an illegal instruction for the guest.  The
writable bits are QEMU 7.2's (firmware/sstc.c prints them on both).

The names ending in h exist only on RV32, where they are the high halves.
"""
from unicorn.riscv_const import (UC_RISCV_REG_MCOUNTEREN, UC_RISCV_REG_SCOUNTEREN)

from minivm.cpu import isa, traps

# -- CSR numbers ---------------------------------------------------------------
TIME, TIMEH = 0xC01, 0xC81
STIMECMP, STIMECMPH = 0x14D, 0x15D
MENVCFG, MENVCFGH = 0x30A, 0x31A
SENVCFG = 0x10A

HIGH_HALVES = {TIMEH: TIME, STIMECMPH: STIMECMP, MENVCFGH: MENVCFG}

# -- fields ----------------------------------------------------------------------
COUNTEREN_TM = 1 << 1          # mcounteren/scounteren: time readable one level down
MENVCFG_STCE = 1 << 63         # stimecmp enabled for S-mode
ENVCFG_LOW_BITS = 0xF1         # FIOM (0), CBIE (5:4), CBCFE (6), CBZE (7)
MENVCFG_WRITABLE = ENVCFG_LOW_BITS | MENVCFG_STCE | 1 << 62   # ... and PBMTE (62)
SENVCFG_WRITABLE = ENVCFG_LOW_BITS

ALL_ONES = (1 << 64) - 1


class HostCsrs:
    """The emulated CSRs of one hart.  now() is mtime in ticks;
    on_time_read() is called when the guest reads time (as the CLINT's),
    on_timer_armed() when it writes stimecmp."""

    def __init__(self, vcpu, now, on_time_read=None, on_timer_armed=None):
        self.vcpu = vcpu
        self.now = now
        self.on_time_read = on_time_read or (lambda: None)
        self.on_timer_armed = on_timer_armed or (lambda: None)
        self.reset()

    def reset(self):
        self.values = {STIMECMP: 0, MENVCFG: 0, SENVCFG: 0}

    # -- the supervisor timer (Sstc) ----------------------------------------------

    @property
    def stimecmp_enabled(self):
        return bool(self.values[MENVCFG] & MENVCFG_STCE)

    def supervisor_timer_pending(self):
        """mip.STIP as stimecmp drives it, or None while menvcfg.STCE is clear
        (then STIP is an ordinary bit M-mode software writes)."""
        if not self.stimecmp_enabled:
            return None
        return self.now() >= self.values[STIMECMP]

    def ticks_until_timer(self):
        """Ticks until STIP rises (0 if it is up), or None if it never will
        (all ones: not before 2^64 ticks, as the CLINT's mtimecmp)."""
        if not self.stimecmp_enabled or self.values[STIMECMP] == ALL_ONES:
            return None
        return max(0, self.values[STIMECMP] - self.now())

    # -- the trap ---------------------------------------------------------------

    def emulate(self, epc):
        """Emulate the CSR instruction at epc if it is one of ours and the
        hart may do it; True if done (pc is then past it)."""
        access = isa.decode_csr_access(self.vcpu.instruction_at(epc))
        if access is None or not self._exists(access.csr):
            return False
        writes = access.funct3 & 3 == isa.CSRRW or access.rs1 != 0
        if not self._allowed(access.csr, writes):
            return False
        old = self._read(access.csr)
        if writes:
            operand = access.rs1 if access.funct3 & 4 else self.vcpu.x(access.rs1)
            kind = access.funct3 & 3
            new = (operand if kind == isa.CSRRW else
                   old | operand if kind == isa.CSRRS else old & ~operand)
            self._write(access.csr, new & self.vcpu.mask)
        self.vcpu.set_x(access.rd, old)
        self.vcpu.pc = epc + 4
        return True

    def _exists(self, csr):
        if csr in HIGH_HALVES:
            return self.vcpu.xlen == 32
        return csr in (TIME, STIMECMP, MENVCFG, SENVCFG)

    def _allowed(self, csr, writes):
        """Privileged spec 2.1: bits 9:8 of the number are the lowest
        privilege that may touch it, bits 11:10 == 3 mean read-only."""
        privilege = self.vcpu.privilege
        if privilege < (csr >> 8) & 3 or (writes and csr >> 10 == 3):
            return False
        if privilege == traps.PRV_M:
            return True
        register = HIGH_HALVES.get(csr, csr)
        if register in (TIME, STIMECMP):
            counteren, = self.vcpu.read_csrs(UC_RISCV_REG_MCOUNTEREN)
            if not counteren & COUNTEREN_TM:
                return False
        if register == TIME and privilege == traps.PRV_U:
            scounteren, = self.vcpu.read_csrs(UC_RISCV_REG_SCOUNTEREN)
            return bool(scounteren & COUNTEREN_TM)
        if register == STIMECMP:
            return self.stimecmp_enabled
        return True

    def _read(self, csr):
        register = HIGH_HALVES.get(csr, csr)
        if register == TIME:
            self.on_time_read()
            value = self.now()
        else:
            value = self.values[register]
        return value >> 32 if csr in HIGH_HALVES else value & self.vcpu.mask

    def _write(self, csr, value):
        register = HIGH_HALVES.get(csr, csr)
        old = self.values[register]
        if csr in HIGH_HALVES:
            value = old & 0xFFFFFFFF | value << 32
        elif self.vcpu.xlen == 32:
            value = old & ~0xFFFFFFFF | value
        writable = {STIMECMP: ALL_ONES, MENVCFG: MENVCFG_WRITABLE,
                    SENVCFG: SENVCFG_WRITABLE}[register]
        self.values[register] = old & ~writable | value & writable
        if register == STIMECMP:
            self.on_timer_armed()
