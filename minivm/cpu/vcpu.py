"""The vCPU: one Unicorn RISC-V hart and its run loop entry, `run()`.

`run()` is this emulator's KVM_RUN.  It starts Unicorn at the current pc and
returns an `Exit` once the guest does something the host must handle:

    exit = vcpu.run()        # guest code runs natively (JIT-compiled by Unicorn)
    machine.handle(exit)     # the host emulates what the guest asked for

Device register accesses are the exception to "return and handle": Unicorn
calls the bus in the middle of the load or store, so the access completes
there, exactly once, and the guest continues without leaving `emu_start`.
Stopping Unicorn inside an access and resuming would execute the instruction
a second time (DESIGN.md fact 4), so a device that needs the run loop (the
finisher) asks for an exit with `request_exit()` and is never resumed.
"""
from unicorn import (UC_ARCH_RISCV, UC_HOOK_INTR, UC_HOOK_MEM_UNMAPPED,
                     UC_MEM_FETCH_UNMAPPED, UC_MEM_WRITE_UNMAPPED, UC_MODE_RISCV32,
                     UC_MODE_RISCV64, Uc, UcError)
from unicorn.riscv_const import UC_RISCV_REG_PC

from minivm.cpu.clock import InstructionClock
from minivm.cpu.exits import Exit, ExitReason

# emu_start needs an address to stop at.  RISC-V instructions are at least
# 2-byte aligned, so pc never equals an odd address: this one is never reached.
NEVER = (1 << 64) - 1

WFI = 0x10500073  # the encoding of `wfi`

UNMAPPED_ACCESS = {UC_MEM_FETCH_UNMAPPED: "fetch", UC_MEM_WRITE_UNMAPPED: "write"}


class Vcpu:
    """One RISC-V hart (RV64 or RV32) on Unicorn."""

    def __init__(self, xlen=64):
        self.xlen = xlen
        self.uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV64 if xlen == 64 else UC_MODE_RISCV32)
        self.clock = InstructionClock(self.uc)
        self._requested_exit = None
        self._bus_error = None
        self.uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_unmapped)
        self.uc.hook_add(UC_HOOK_INTR, self._on_exception)

    # -- registers -----------------------------------------------------------

    @property
    def pc(self):
        return self.uc.reg_read(UC_RISCV_REG_PC)

    @pc.setter
    def pc(self, value):
        self.uc.reg_write(UC_RISCV_REG_PC, value)

    # -- the run loop entry ----------------------------------------------------

    def run(self):
        """Run the guest from pc until it needs the host; return why."""
        self._requested_exit = None
        self._bus_error = None
        try:
            self.uc.emu_start(self.pc, NEVER)
        except UcError:
            if self._bus_error is None:
                raise
        except KeyboardInterrupt:
            return Exit(ExitReason.INTERRUPTED, self.pc)
        return self._why_stopped()

    def _why_stopped(self):
        pc = self.pc
        if self._requested_exit is not None:
            return self._requested_exit
        if self._bus_error is not None:
            address, access = self._bus_error
            return Exit(ExitReason.BUS_ERROR, pc, address=address, access=access)
        if self.clock.attached and self.clock.limit_reached():
            return Exit(ExitReason.LIMIT, pc)
        if self.stopped_after_wfi(pc):
            return Exit(ExitReason.HALT, pc)
        return Exit(ExitReason.INTERRUPTED, pc)  # emu_stop() from outside (Ctrl-C)

    def stopped_after_wfi(self, pc):
        # Unicorn ends emu_start at a wfi with pc just past it (DESIGN.md fact 3).
        try:
            previous = int.from_bytes(self.uc.mem_read(pc - 4, 4), "little")
        except UcError:
            return False
        return previous == WFI

    def request_exit(self, exit):
        """Called by a device (through the machine) to end this run() call.

        The current instruction is not resumed: see the module docstring.
        """
        if self._requested_exit is None:
            self._requested_exit = exit
        self.uc.emu_stop()

    def stop(self):
        """Make run() return soon; safe to call from another thread."""
        self.uc.emu_stop()

    # -- hooks -------------------------------------------------------------------

    def _on_unmapped(self, uc, access, address, size, value, user_data):
        self._bus_error = (address, UNMAPPED_ACCESS.get(access, "read"))
        return False  # do not map anything: emu_start fails and run() reports it

    def _on_exception(self, uc, cause, user_data):
        # Unicorn does not deliver exceptions to the guest's trap vector; it
        # calls this hook with pc already past the faulting instruction.
        pc = self.pc - 4
        self.request_exit(Exit(ExitReason.TRAP, pc, cause=cause))
