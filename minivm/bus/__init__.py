"""The guest physical address space: RAM, device (MMIO) regions, dispatch."""
from minivm.bus.bus import Bus, Region
from minivm.bus.ram import Ram

__all__ = ["Bus", "Ram", "Region"]
