"""Trap-and-emulate, the host's half: taking a trap on the guest's behalf.

Unicorn never enters the guest's own trap handler (docs/design.md, U1) and
cannot raise machine-level interrupts (fact 2).  So when the guest faults,
or an interrupt is due, the host does what the hardware would: RISC-V
Privileged spec 3.1.6.1 (M-mode) and 4.1.1 (S-mode), "trap entry":

    xepc   <- pc of the trapping instruction (or the next one to run)
    xcause <- cause, with the top bit set for interrupts
    xtval  <- the faulting address or instruction bits (else 0)
    xPIE <- xIE; xIE <- 0; xPP <- the privilege the trap came from
    privilege <- x; pc <- xtvec (+ 4 * cause for vectored interrupts)

where x is M, or S when medeleg/mideleg delegates the cause and the trap
comes from S or U.  `mret`/`sret` undo this; Unicorn runs those itself.
"""
from unicorn.riscv_const import (UC_RISCV_REG_MCAUSE, UC_RISCV_REG_MEDELEG,
                                 UC_RISCV_REG_MEPC, UC_RISCV_REG_MIDELEG,
                                 UC_RISCV_REG_MSTATUS, UC_RISCV_REG_MTVAL,
                                 UC_RISCV_REG_MTVEC, UC_RISCV_REG_SCAUSE,
                                 UC_RISCV_REG_SEPC, UC_RISCV_REG_STVAL,
                                 UC_RISCV_REG_STVEC)

# -- privilege levels --------------------------------------------------------------
PRV_U, PRV_S, PRV_M = 0, 1, 3

# -- mstatus fields ----------------------------------------------------------------
MSTATUS_SIE = 1 << 1      # S-mode interrupts enabled
MSTATUS_MIE = 1 << 3      # M-mode interrupts enabled
MSTATUS_SPIE = 1 << 5     # SIE before the last S-mode trap
MSTATUS_MPIE = 1 << 7     # MIE before the last M-mode trap
MSTATUS_SPP = 1 << 8      # privilege before the last S-mode trap (0 U, 1 S)
MSTATUS_MPP_SHIFT = 11    # two bits: privilege before the last M-mode trap
MSTATUS_MPP = 3 << MSTATUS_MPP_SHIFT

# -- exception causes (mcause with the interrupt bit clear) --------------------
INSTRUCTION_ACCESS_FAULT = 1
ILLEGAL_INSTRUCTION = 2
BREAKPOINT = 3
LOAD_ADDRESS_MISALIGNED = 4
LOAD_ACCESS_FAULT = 5
STORE_ADDRESS_MISALIGNED = 6
STORE_ACCESS_FAULT = 7
ECALL_FROM_U = 8          # ecall from S is 9, from M is 11: 8 + privilege
INSTRUCTION_PAGE_FAULT = 12
LOAD_PAGE_FAULT = 13
STORE_PAGE_FAULT = 15

EXCEPTION_NAMES = {
    0: "instruction address misaligned", 1: "instruction access fault",
    2: "illegal instruction", 3: "breakpoint", 4: "load address misaligned",
    5: "load access fault", 6: "store/AMO address misaligned",
    7: "store/AMO access fault", 8: "ecall from U-mode", 9: "ecall from S-mode",
    11: "ecall from M-mode", 12: "instruction page fault", 13: "load page fault",
    15: "store/AMO page fault",
}

# -- interrupts (mcause with the interrupt bit set; bit numbers in mip/mie) ----
SSI, MSI, STI, MTI, SEI, MEI = 1, 3, 5, 7, 9, 11
INTERRUPT_NAMES = {
    SSI: "supervisor software interrupt", MSI: "machine software interrupt",
    STI: "supervisor timer interrupt", MTI: "machine timer interrupt",
    SEI: "supervisor external interrupt", MEI: "machine external interrupt",
}
# When several are pending and enabled, this order decides (Privileged spec 3.1.9).
INTERRUPT_PRIORITY = (MEI, MSI, MTI, SEI, SSI, STI)
MACHINE_INTERRUPTS = (1 << MEI) | (1 << MSI) | (1 << MTI)


def cause_name(cause, interrupt=False):
    names = INTERRUPT_NAMES if interrupt else EXCEPTION_NAMES
    return names.get(cause, f"cause {cause}")


def take_trap(vcpu, cause, tval, epc, interrupt=False):
    """Enter the guest's trap handler as the hardware would; returns the new pc."""
    privilege = vcpu.privilege
    delegation = vcpu.read_csr(UC_RISCV_REG_MIDELEG if interrupt else UC_RISCV_REG_MEDELEG)
    to_supervisor = privilege <= PRV_S and (delegation >> cause) & 1
    xcause = cause | (1 << (vcpu.xlen - 1)) if interrupt else cause
    status = vcpu.read_csr(UC_RISCV_REG_MSTATUS)
    if to_supervisor:
        status = _moved(status, MSTATUS_SIE, MSTATUS_SPIE)
        status = status & ~MSTATUS_SPP | (MSTATUS_SPP if privilege == PRV_S else 0)
        registers = (UC_RISCV_REG_SEPC, UC_RISCV_REG_SCAUSE, UC_RISCV_REG_STVAL)
        vector, target = vcpu.read_csr(UC_RISCV_REG_STVEC), PRV_S
    else:
        status = _moved(status, MSTATUS_MIE, MSTATUS_MPIE)
        status = status & ~MSTATUS_MPP | privilege << MSTATUS_MPP_SHIFT
        registers = (UC_RISCV_REG_MEPC, UC_RISCV_REG_MCAUSE, UC_RISCV_REG_MTVAL)
        vector, target = vcpu.read_csr(UC_RISCV_REG_MTVEC), PRV_M
    epc_register, cause_register, tval_register = registers
    vcpu.write_csrs({epc_register: epc, cause_register: xcause, tval_register: tval,
                     UC_RISCV_REG_MSTATUS: status})
    vcpu.privilege = target
    pc = vector & ~3
    if interrupt and vector & 3 == 1:    # vectored mode: one entry per interrupt cause
        pc += 4 * cause
    vcpu.pc = pc
    return pc


def _moved(status, enable_bit, previous_bit):
    """xPIE <- xIE, xIE <- 0."""
    previous = previous_bit if status & enable_bit else 0
    return status & ~(enable_bit | previous_bit) | previous


def interrupt_to_take(pending, enabled, privilege, status, mideleg):
    """The interrupt the hart takes now, or None (Privileged spec 3.1.9).

    pending/enabled are mip/mie.  An interrupt goes to M unless mideleg
    delegates it; M-level ones are taken when running below M, or in M with
    mstatus.MIE set; S-level ones below S, or in S with mstatus.SIE set.
    """
    ready = pending & enabled
    if not ready:
        return None
    machine = ready & ~mideleg
    supervisor = ready & mideleg
    machine_on = privilege < PRV_M or status & MSTATUS_MIE
    supervisor_on = privilege < PRV_S or (privilege == PRV_S and status & MSTATUS_SIE)
    for cause in INTERRUPT_PRIORITY:
        if machine >> cause & 1 and machine_on:
            return cause
    for cause in INTERRUPT_PRIORITY:
        if supervisor >> cause & 1 and supervisor_on:
            return cause
    return None
