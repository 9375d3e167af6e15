"""The virtual CPU: a Unicorn RISC-V core driven like KVM_RUN.

Read vcpu.py first: `Vcpu.run()` runs the guest until something needs the
host and returns an `Exit` that says why (exits.py).  clock.py counts guest
instructions, which is what makes runs deterministic and limits runaway guests.
"""
from minivm.cpu import traps
from minivm.cpu.exits import Exit, ExitReason
from minivm.cpu.vcpu import Vcpu

__all__ = ["Exit", "ExitReason", "Vcpu", "traps"]
