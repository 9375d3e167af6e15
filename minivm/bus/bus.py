"""The bus: who answers at each guest physical address.

Regions are RAM (host memory the guest reaches with no trap) and devices
(MMIO: every access traps to the host).  For a device region Unicorn calls
`read`/`write` below in the middle of the guest's load or store; the bus
turns the absolute address into an offset, counts the trap, lets the tracer
see it, and hands it to the device model:

    guest `sb a0, 0(a5)`  ->  Unicorn mmio callback  ->  Bus  ->  device.write(offset, size, value)
"""
from dataclasses import dataclass

from minivm.errors import MinivmError

PAGE = 4096


@dataclass(frozen=True)
class Region:
    name: str
    base: int
    size: int
    kind: str            # "ram" or "mmio"
    device: object = None
    irq: int = None

    @property
    def end(self):
        return self.base + self.size

    def overlaps(self, other):
        return self.base < other.end and other.base < self.end


class Bus:
    def __init__(self, uc):
        self.uc = uc
        self.regions = []
        self.tracer = None   # set by the machine when --trace is on

    def add_ram(self, name, ram):
        self._add(Region(name, ram.base, ram.size, "ram"))
        ram.map_into(self.uc)

    def add_device(self, name, base, device, irq=None):
        self._add(Region(name, base, device.size, "mmio", device, irq))
        # Unicorn maps whole 4 KiB pages; a device smaller than a page (the
        # UART has 0x100 bytes) also answers the rest of its page, reading
        # 0 and ignoring writes like any unknown register.
        mapped = -(-device.size // PAGE) * PAGE
        self.uc.mmio_map(base, mapped, self._reader(name, device), None,
                         self._writer(name, device), None)

    def region_at(self, address):
        for region in self.regions:
            if region.base <= address < region.end:
                return region
        return None

    def _add(self, region):
        for other in self.regions:
            if region.overlaps(other):
                raise MinivmError(
                    f"{region.name} at 0x{region.base:x}-0x{region.end - 1:x} overlaps "
                    f"{other.name} at 0x{other.base:x}-0x{other.end - 1:x}")
        self.regions.append(region)
        self.regions.sort(key=lambda r: r.base)

    # The two callbacks below run once per guest access to a device register:
    # they are the hottest Python code in minivm, so they do only what they must.

    def _reader(self, name, device):
        traps = device.traps

        def read(uc, offset, size, user_data):
            traps[offset, size, False] += 1
            value = device.read(offset, size)
            if self.tracer is not None:
                self.tracer.mmio(name, device, offset, size, value, is_write=False)
            return value
        return read

    def _writer(self, name, device):
        traps = device.traps

        def write(uc, offset, size, value, user_data):
            traps[offset, size, True] += 1
            if self.tracer is not None:
                self.tracer.mmio(name, device, offset, size, value, is_write=True)
            device.write(offset, size, value)
        return write
