"""The shape every device model has: what the bus and the board need from it.

A device knows nothing about absolute addresses, the CPU or the process:
the bus gives it offsets within its region, and it reports interrupts and
requests through callbacks the board wires up (`irq`, `on_exit`, ...).
"""
from collections import Counter


class Device:
    size = 0x1000        # bytes of address space the region takes
    REGISTERS = {}       # offset -> register name, for the trace and --stats
    # Some devices show different registers at one offset depending on a
    # mode bit (the 16550's DLAB).  `bank` names the current mode, so a trap
    # counted now is still reported under the right register later.
    bank = 0

    def __init__(self):
        # Traps taken, keyed by (offset, access size, is_write, bank).  The
        # bus counts; the device owns the numbers.
        self.traps = Counter()
        # Bytes of payload moved between the guest and the world outside
        # (characters sent and received, disk data), counted by the device:
        # traps per KiB of payload is what the three device models cost.
        self.payload_bytes = 0

    def read(self, offset, size):
        return 0

    def write(self, offset, size, value):
        pass

    def reset(self):
        pass

    def register_name(self, offset, is_write, bank=None):
        """The register an access at `offset` reaches (in `bank`, default: now)."""
        return self.REGISTERS.get(offset, f"+0x{offset:x}")

    def describe(self, offset, value, is_write):
        """Extra words for the trace line (e.g. the character written), or ''."""
        return ""

    def trap_count(self):
        return sum(self.traps.values())
