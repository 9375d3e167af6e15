"""The vCPU: one Unicorn RISC-V hart and its run loop entry, `run()`.

`run()` is this emulator's KVM_RUN.  It starts Unicorn at the current pc and
returns an `Exit` once the guest does something the host must handle:

    exit = vcpu.run()        # guest code runs natively (JIT-compiled by Unicorn)
    machine.handle(exit)     # the host emulates what the guest asked for

Device register accesses mostly never leave `run()`: Unicorn calls the bus
in the middle of the load or store, and the access completes right there.
When a device needs the run loop during an access (the finisher, an
interrupt that is now due), the vCPU stops *inside* the access.  Unicorn
then leaves pc at the access instruction, with a load's destination register
not yet written (docs/design.md, U4); resuming there would run the access a
second time.  So `complete_access()` finishes the instruction on the host:
it writes a load's result to its register and moves pc past the instruction,
as KVM does after an MMIO exit.
"""
import ctypes

from unicorn import (UC_ARCH_RISCV, UC_HOOK_INSN_INVALID, UC_HOOK_INTR, UC_HOOK_MEM_FETCH_PROT,
                     UC_HOOK_MEM_UNMAPPED, UC_HOOK_MEM_WRITE_PROT, UC_MEM_FETCH_UNMAPPED,
                     UC_MEM_WRITE_UNMAPPED, UC_MODE_RISCV32, UC_MODE_RISCV64, Uc, UcError)
from unicorn.riscv_const import (UC_RISCV_REG_MIDELEG, UC_RISCV_REG_MIE, UC_RISCV_REG_MIP,
                                 UC_RISCV_REG_MSTATUS, UC_RISCV_REG_PC, UC_RISCV_REG_PRIV,
                                 UC_RISCV_REG_SATP, UC_RISCV_REG_X0)

from unicorn.unicorn_py3 import unicorn as _binding

from minivm.cpu import isa, mmu, traps
from minivm.cpu.clock import Clocks
from minivm.cpu.exits import Exit, ExitReason

# emu_start needs an address to stop at.  RISC-V instructions are at least
# 2-byte aligned, so pc never equals an odd address: this one is never reached.
NEVER = (1 << 64) - 1

WFI = 0x10500073  # the encoding of `wfi`

# What an access to an address nothing is mapped at becomes in the guest.
ACCESS_FAULTS = {UC_MEM_FETCH_UNMAPPED: traps.INSTRUCTION_ACCESS_FAULT,
                 UC_MEM_WRITE_UNMAPPED: traps.STORE_ACCESS_FAULT}


class Vcpu:
    """One RISC-V hart (RV64 or RV32) on Unicorn."""

    def __init__(self, xlen=64):
        self.xlen = xlen
        self.mask = (1 << xlen) - 1
        self.uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV64 if xlen == 64 else UC_MODE_RISCV32)
        self._register_value = ctypes.c_uint64()
        self.clocks = Clocks(self.uc)
        self._requested_exit = None
        self._inside_access = False
        self._pending_trap = None
        self._stale_code = []  # guest RAM ranges devices wrote: translations to drop
        self.last_load = 0     # the bus leaves each device read's value here
        self.running = False
        # Machine-level interrupt lines (MEIP, MTIP, MSIP).  Unicorn's mip
        # cannot hold them (docs/design.md, U2), so the vCPU keeps them here and
        # the host injects those interrupts itself (cpu/traps.py).
        self.machine_lines = 0
        self.uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_unmapped)
        self.uc.hook_add(UC_HOOK_MEM_WRITE_PROT, self._on_write_protected)
        self.uc.hook_add(UC_HOOK_MEM_FETCH_PROT, self._on_fetch_protected)
        self.uc.hook_add(UC_HOOK_INTR, self._on_exception)
        self.uc.hook_add(UC_HOOK_INSN_INVALID, self._on_breakpoint)

    # -- registers -----------------------------------------------------------

    def register(self, register_id):
        # libunicorn's uc_reg_read called directly: the Python binding's
        # reg_read costs several microseconds, and the host reads registers
        # a dozen times per interrupt.  (RV32 fills only the low 4 bytes.)
        _binding.uclib.uc_reg_read(self.uc._uch, register_id, ctypes.byref(self._register_value))
        return self._register_value.value & self.mask

    def set_register(self, register_id, value):
        self._register_value.value = value & self.mask
        _binding.uclib.uc_reg_write(self.uc._uch, register_id, ctypes.byref(self._register_value))

    @property
    def pc(self):
        return self.register(UC_RISCV_REG_PC)

    @pc.setter
    def pc(self, value):
        self.set_register(UC_RISCV_REG_PC, value)

    def x(self, number):
        return self.register(UC_RISCV_REG_X0 + number)

    def set_x(self, number, value):
        if number != 0:
            self.set_register(UC_RISCV_REG_X0 + number, value)

    @property
    def privilege(self):
        # Unicorn's virtual PRIV register: 0 U, 1 S, 3 M (Debug spec encoding).
        return self.register(UC_RISCV_REG_PRIV) & 3

    @privilege.setter
    def privilege(self, value):
        self.set_register(UC_RISCV_REG_PRIV, value)

    def read_csr(self, register):
        return self.read_csrs(register)[0]

    def read_csrs(self, *registers):
        # Unicorn checks CSR privilege on host accesses too: below M, an
        # M-mode CSR reads as garbage and ignores writes.  So the host
        # reads and writes them as M, and puts the privilege back.
        privilege = self.privilege
        if privilege != traps.PRV_M:
            self.privilege = traps.PRV_M
        values = [self.register(register) for register in registers]
        if privilege != traps.PRV_M:
            self.privilege = privilege
        return values

    def write_csrs(self, values):
        privilege = self.privilege
        if privilege != traps.PRV_M:
            self.privilege = traps.PRV_M
        for register, value in values.items():
            self.set_register(register, value)
        if privilege != traps.PRV_M:
            self.privilege = privilege

    # -- interrupt lines ---------------------------------------------------------

    def set_interrupt_line(self, cause, level):
        """Raise or lower one mip bit (traps.MEI, traps.MTI, traps.SEI, ...)."""
        bit = 1 << cause
        if bit & traps.MACHINE_INTERRUPTS:
            self.machine_lines = self.machine_lines | bit if level else self.machine_lines & ~bit
            self.watch_interrupt_window()
            return
        # Supervisor-level bits do fit in Unicorn's mip: there the guest sees
        # them, and Unicorn takes the interrupt itself when it is enabled.
        mip, = self.read_csrs(UC_RISCV_REG_MIP)
        self.write_csrs({UC_RISCV_REG_MIP: mip | bit if level else mip & ~bit})

    def watch_interrupt_window(self):
        """Let the time counter's block hook stop the guest as soon as a
        pending machine-level interrupt can be taken (see cpu/clock.py)."""
        counter = self.clocks.time.counter
        counter.pending = self.machine_lines
        counter.mie = self.read_csr(UC_RISCV_REG_MIE)

    def interrupt_due(self):
        """The interrupt the hart would take now (a cause number), or None."""
        mip, mie, status, mideleg = self.read_csrs(
            UC_RISCV_REG_MIP, UC_RISCV_REG_MIE, UC_RISCV_REG_MSTATUS, UC_RISCV_REG_MIDELEG)
        return traps.interrupt_to_take(self.machine_lines | mip, mie, self.privilege,
                                       status, mideleg)

    def interrupt_waiting(self):
        """An interrupt is pending and enabled in mie, even if globally masked:
        what wakes a hart from wfi (Privileged spec 3.3.3)."""
        mip, mie = self.read_csrs(UC_RISCV_REG_MIP, UC_RISCV_REG_MIE)
        return bool((self.machine_lines | mip) & mie)

    # -- guest memory as the guest sees it ----------------------------------------

    def translate(self, address):
        """The guest physical address of a virtual one as the hart sees it now
        (its page tables below M-mode), or None if it is not mapped."""
        satp = self.read_csr(UC_RISCV_REG_SATP) if self.privilege != traps.PRV_M else 0

        def read_physical(physical, length):
            return int.from_bytes(self.uc.mem_read(physical, length), "little")

        return mmu.translate(read_physical, satp, self.xlen, address)

    def read_virtual(self, address, size):
        """Read `size` bytes at a guest virtual address (the guest's page tables)."""
        physical = self.translate(address)
        if physical is None:
            raise UcError(0)
        return bytes(self.uc.mem_read(physical, size))

    def instruction_at(self, pc):
        """The bits of the instruction at pc (16 for a compressed one, else 32)."""
        first = int.from_bytes(self.read_virtual(pc, 2), "little")
        if isa.instruction_length(first) == 2:
            return first
        return int.from_bytes(self.read_virtual(pc, 4), "little")

    # -- the run loop entry ----------------------------------------------------

    def run(self):
        """Run the guest from pc until it needs the host; return why."""
        self._requested_exit = None
        self._pending_trap = None
        self._inside_access = False
        self.running = True
        try:
            self.uc.emu_start(self.pc, NEVER)
        except UcError:
            if self._pending_trap is None:
                raise
        except KeyboardInterrupt:
            return Exit(ExitReason.INTERRUPTED, self.pc)
        finally:
            self.running = False
        exit = self._why_stopped()
        self._drop_stale_code()
        return exit

    def _why_stopped(self):
        if self._requested_exit is not None:
            if self._inside_access:
                self.complete_access(self.last_load)
            return self._requested_exit
        if self._pending_trap is not None:
            cause, epc, tval = self._pending_trap
            return Exit(ExitReason.TRAP, epc, cause=cause, address=tval)
        pc = self.pc
        if self.clocks.instructions.attached and self.clocks.instructions.limit_reached():
            return Exit(ExitReason.LIMIT, pc)
        time = self.clocks.time
        if time.attached and time.counter.window_open:
            time.counter.window_open = False
            return Exit(ExitReason.IRQ_WINDOW, pc)
        if time.attached and time.limit_reached():
            return Exit(ExitReason.TIMER, pc)
        if self.stopped_after_wfi(pc):
            return Exit(ExitReason.HALT, pc)
        return Exit(ExitReason.INTERRUPTED, pc)  # emu_stop() from outside (Ctrl-C)

    def stopped_after_wfi(self, pc):
        # Unicorn ends emu_start at a wfi with pc just past it (docs/design.md, U3).
        try:
            return self.instruction_at(pc - 4) == WFI
        except UcError:
            return False

    def request_exit(self, exit, inside_access=True):
        """End this run() call with `exit`.  Called by devices (through the
        board) during a guest access: the access is completed, never redone."""
        if not self.running:
            return
        if self._requested_exit is None:
            self._requested_exit = exit
            self._inside_access = inside_access
        self.uc.emu_stop()

    def complete_access(self, loaded_value):
        """Finish the load or store that Unicorn was stopped in (see the module doc)."""
        access = isa.decode_memory_access(self.instruction_at(self.pc))
        if access is None:
            return
        if access.rd is not None and not access.is_store:
            value = loaded_value & ((1 << (8 * access.size)) - 1)
            if access.signed:
                value = isa.sign_extend(value, 8 * access.size)
            self.set_x(access.rd, value)
        self.pc = self.pc + access.length

    def discard_translations(self, low, high):
        """A device wrote guest RAM [low, high) behind Unicorn's back (DMA):
        code translated from there is stale and must go.  Never from inside
        the device's callback: Unicorn looks the range up as an instruction
        fetch at the hart's privilege, and below M a page the guest maps
        without execute permission (a kernel's buffers) faults; Unicorn then
        moves pc past the store and keeps the fault, and the access can no
        longer be completed.  So stop after this access, complete it, and
        drop the range then, as M, where addresses are physical."""
        self._stale_code.append((low, high))
        if self.running:
            self.request_exit(Exit(ExitReason.MMIO, self.pc))
        else:
            self._drop_stale_code()

    def _drop_stale_code(self):
        if not self._stale_code:
            return
        privilege = self.privilege
        self.privilege = traps.PRV_M
        for low, high in self._stale_code:
            self.uc.ctl_remove_cache(low, high)
        self._stale_code.clear()
        self.privilege = privilege

    def stop(self):
        """Make run() return soon; safe to call from another thread."""
        self.uc.emu_stop()

    # -- hooks: the guest's exceptions, as Unicorn reports them -------------------

    def _on_exception(self, uc, cause, user_data):
        # Unicorn calls this with pc already 4 bytes past the trapping
        # instruction, whatever its length (docs/design.md, U1).
        epc = (self.pc - 4) & self.mask
        self._pending_trap = self._exception(cause, epc)
        uc.emu_stop()

    def _exception(self, cause, epc):
        """(cause, epc, tval) as the hardware reports them."""
        if cause == traps.ECALL_FROM_U:
            # Unicorn says 8 whatever the privilege; the spec says 8 + privilege.
            return cause + self.privilege, epc, 0
        if cause == traps.ILLEGAL_INSTRUCTION:
            return cause, epc, self._instruction_or_zero(epc)
        if cause in (traps.LOAD_PAGE_FAULT, traps.STORE_PAGE_FAULT,
                     traps.LOAD_ADDRESS_MISALIGNED, traps.STORE_ADDRESS_MISALIGNED):
            return cause, epc, self._faulting_address(epc)
        if cause == traps.INSTRUCTION_PAGE_FAULT:
            return cause, epc, epc
        return cause, epc, 0

    def _instruction_or_zero(self, epc):
        try:
            return self.instruction_at(epc)
        except UcError:
            return 0

    def _faulting_address(self, epc):
        # Unicorn keeps the faulting address to itself, so decode the
        # instruction and compute its address as it did: base register + offset.
        access = isa.decode_memory_access(self._instruction_or_zero(epc))
        if access is None:
            return 0
        return (self.x(access.base) + access.offset) & self.mask

    def _on_breakpoint(self, uc, user_data):
        # `ebreak` arrives here, with pc at the instruction.
        self._pending_trap = (traps.BREAKPOINT, self.pc, 0)
        return False     # emu_start fails; run() turns it into a TRAP exit

    def _on_write_protected(self, uc, access, address, size, value, user_data):
        # A store to read-only memory (a passthrough window mapped ,ro).
        self._pending_trap = (traps.STORE_ACCESS_FAULT, self.pc, address & self.mask)
        return False

    def _on_fetch_protected(self, uc, access, address, size, value, user_data):
        # An instruction fetch from a device region (devices are mapped
        # without execute permission): an instruction access fault, as a
        # real hart's PMA check gives and as QEMU does for the CLINT and PLIC.
        self._pending_trap = (traps.INSTRUCTION_ACCESS_FAULT, address & self.mask,
                              address & self.mask)
        return False

    def _on_unmapped(self, uc, access, address, size, value, user_data):
        cause = ACCESS_FAULTS.get(access, traps.LOAD_ACCESS_FAULT)
        epc = address if cause == traps.INSTRUCTION_ACCESS_FAULT else self.pc
        self._pending_trap = (cause, epc, address & self.mask)
        return False     # map nothing: emu_start fails and run() reports it
