"""The bus: who answers at each guest physical address.

Regions are RAM (host memory the guest reaches with no trap) and devices
(MMIO: every access traps to the host).  For a device region Unicorn calls
`read`/`write` below in the middle of the guest's load or store; the bus
turns the absolute address into an offset, counts the trap, lets the tracer
see it, and hands it to the device model:

    guest `sb a0, 0(a5)`  ->  Unicorn mmio callback  ->  Bus  ->  device.write(offset, size, value)
"""
from collections import namedtuple

from unicorn.unicorn_py3 import unicorn as _binding

from minivm.errors import MinivmError

PAGE = 4096


class Region(namedtuple("Region", "name base size kind device irq", defaults=(None, None))):
    """A range of guest physical addresses; kind is "ram", "mmio" or "passthrough"."""

    @property
    def end(self):
        return self.base + self.size

    def overlaps(self, other):
        return self.base < other.end and other.base < self.end


class Bus:
    def __init__(self, vcpu):
        self.vcpu = vcpu
        self.uc = vcpu.uc
        self.regions = []
        self.tracer = None   # set by the machine when --trace is on
        self.watch = None    # set by the debugger: watch(address, is_write) -> stop first?
        self.last_written = None  # with a debugger: address -> the last byte the guest wrote
        self.break_on = set()     # {(device, register or None)}: --break-on, into pdb
        self.on_break = None      # on_break(name, device, offset, size, value, is_write)
        self._callbacks = []

    def add_ram(self, name, ram):
        self._add(Region(name, ram.base, ram.size, "ram"))
        ram.map_into(self.uc)

    def add_passthrough(self, name, window):
        """A host file mapped into guest memory: no callbacks, so no traps."""
        self._add(Region(name, window.address, window.size, "passthrough", window))
        window.map_into(self.uc)

    def add_device(self, name, base, device, irq=None):
        self._add(Region(name, base, device.size, "mmio", device, irq))
        # Unicorn maps whole 4 KiB pages; a device smaller than a page (the
        # UART has 0x100 bytes) also answers the rest of its page, reading
        # 0 and ignoring writes like any unknown register.
        mapped = -(-device.size // PAGE) * PAGE
        read, write = self._reader(name, device, base), self._writer(name, device, base)
        # Registered with libunicorn directly rather than through
        # Uc.mmio_map, whose two extra Python wrapper frames per access
        # would cost a third of every trap.  The callbacks must stay alive
        # as long as the mapping, so the bus keeps them.
        self._callbacks.append((read, write))
        status = _binding.uclib.uc_mmio_map(self.uc._uch, base, mapped, read, None, write, None)
        if status != 0:
            raise _binding.UcError(status)

    def region_at(self, address):
        for region in self.regions:
            if region.base <= address < region.end:
                return region
        return None

    def device_at(self, address):
        """The name of the device answering at address (its whole mapped
        pages, see add_device), or None."""
        for region in self.regions:
            mapped_end = region.base + -(-region.size // PAGE) * PAGE
            if region.kind == "mmio" and region.base <= address < mapped_end:
                return region.name
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
    # An exception inside one (a bug in a device model) is kept and raised
    # again from emu_start, as Unicorn's own hook wrapper does.

    def _reader(self, name, device, base):
        traps, uc, vcpu = device.traps, self.uc, self.vcpu

        def read(handle, offset, size, user_data):
            try:
                if self.watch is not None and self.watch(base + offset, False):
                    return 0       # stopped before the access: it runs again on resuming
                traps[offset, size, False, device.bank] += 1
                if self.break_on and self._breaks(name, device, offset, False):
                    value = self.on_break(name, device, offset, size, None, False)
                else:
                    value = device.read(offset, size)
                vcpu.last_load = value     # in case the vCPU must finish this load itself
                if self.tracer is not None:
                    self.tracer.mmio(name, device, offset, size, value, is_write=False)
                return value
            except BaseException as error:
                _stop_with(uc, error)
                return 0
        return _binding.MMIO_READ_CFUNC(read)

    def _writer(self, name, device, base):
        traps, uc = device.traps, self.uc

        def write(handle, offset, size, value, user_data):
            try:
                if self.watch is not None and self.watch(base + offset, True):
                    return         # stopped before the access: it runs again on resuming
                traps[offset, size, True, device.bank] += 1
                if self.tracer is not None:
                    self.tracer.mmio(name, device, offset, size, value, is_write=True)
                if self.break_on and self._breaks(name, device, offset, True):
                    self.on_break(name, device, offset, size, value, True)
                else:
                    device.write(offset, size, value)
                if self.last_written is not None:
                    for byte in range(size):
                        self.last_written[base + offset + byte] = (value >> (8 * byte)) & 0xFF
            except BaseException as error:
                _stop_with(uc, error)
        return _binding.MMIO_WRITE_CFUNC(write)


    def _breaks(self, name, device, offset, is_write):
        register = device.register_name(offset, is_write)
        return (name, None) in self.break_on or (name, register) in self.break_on


def _stop_with(uc, error):
    if uc._hook_exception is None:
        uc._hook_exception = error
    uc.emu_stop()
