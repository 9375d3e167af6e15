"""Why the guest stopped running: the exit reasons of the run loop.

As with KVM_RUN, the vCPU runs guest code natively until the guest does
something only the host can handle; then it "exits" with a reason and the
host handles it.
"""
import enum
from collections import namedtuple


class ExitReason(enum.Enum):
    # A load or store to a device register.  Unicorn calls the bus in the
    # middle of the instruction, so the host completes the access right
    # there and the guest goes on; the run loop only sees these in the trace.
    MMIO = "MMIO"
    HALT = "HALT"            # wfi: nothing to do until an interrupt
    TRAP = "TRAP"            # a synchronous exception the host must deliver
    TIMER = "TIMER"          # virtual time reached a deadline (a timer, input)
    IRQ_WINDOW = "IRQ_WINDOW"  # a pending interrupt was just unmasked: take it now
    FINISH = "FINISH"        # the guest wrote the finisher (test device)
    RESET = "RESET"          # the guest asked the finisher for a reset
    LIMIT = "LIMIT"          # the instruction budget (--max-insns) ran out
    BREAKPOINT = "BREAKPOINT"  # a debugger's breakpoint or watchpoint
    INTERRUPTED = "INTERRUPTED"  # the user pressed Ctrl-C


# One exit: why, where (pc), and the details some reasons carry:
#   code     FINISH: the exit status the guest asked for
#   address  TRAP: tval (the faulting address or instruction bits)
#   cause    TRAP: the exception cause number
# (namedtuple rather than a dataclass: importing dataclasses costs start-up time.)
Exit = namedtuple("Exit", "reason pc code address cause", defaults=(0, 0, 0))
