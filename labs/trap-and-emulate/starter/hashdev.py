"""Two hash accelerators behind one MMIO window: your half of trap-and-emulate.

The guest (firmware/hashdev.c) loads and stores to 0x1030_0000-0x1030_3fff.
minivm traps every one of those accesses (a VM exit) and calls
`Board.mmio(address, size, is_write, value)` below, from the exit handler,
in the middle of the guest's instruction.  Your job: route each access to
the right device (the exit handling) and emulate that device's registers
(the device model), so the guest cannot tell it is not real hardware.

The window, four 4 KiB pages:

    0x1030_0000  hash0          0x1030_2000  hash1
    0x1030_1000  (no device)    0x1030_3000  (no device)

Registers of one device (offsets within its page; 32-bit):

    0x00 MAGIC    r   0x48534148 ("HASH" in memory order)
    0x04 VERSION  r   1
    0x08 CONTROL  w   writing 1 resets the hash: RESULT back to the FNV-1a
                      offset basis, COUNT to 0.  Other values do nothing.
    0x0C DATA     w   hash the `size` bytes written (1, 2 or 4), least
                      significant byte first (RISC-V is little-endian)
    0x10 RESULT   r   32-bit FNV-1a of every byte hashed since the last reset
    0x14 COUNT    r   bytes hashed since the last reset
    0x18 SCRATCH  rw  holds whatever was last written (0 at power-on)

Reading a write-only register, or any offset with no register, gives 0;
writing a read-only register, or an offset with no register, does nothing.
An access to a page with no device reads 0 and ignores writes too.
"""
WINDOW_BASE = 0x1030_0000
WINDOW_SIZE = 0x4000
PAGE = 0x1000

MAGIC, VERSION, CONTROL, DATA, RESULT, COUNT, SCRATCH = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18
HASH_MAGIC = 0x48534148
CONTROL_RESET = 1
FNV_BASIS = 2166136261
FNV_PRIME = 16777619

# offset -> register name: the trace and --stats print these names.
# TODO: name every register (the trace shows "hashdev.hash0.+0xc" until you do).
REGISTERS = {MAGIC: "MAGIC", VERSION: "VERSION"}

# name -> base address of each device in the window.
DEVICES = {"hash0": WINDOW_BASE, "hash1": WINDOW_BASE + 2 * PAGE}


class HashDevice:
    """One hash accelerator: its registers, by offset."""

    def __init__(self):
        self.scratch = 0
        self.reset()

    def reset(self):
        """Power-on state (also what CONTROL_RESET does to the hash)."""
        # TODO: the hash's state.

    def read(self, offset, size):
        """A guest load of `size` bytes at `offset`: the value it reads."""
        if offset == MAGIC:
            return HASH_MAGIC
        if offset == VERSION:
            return 1
        # TODO: RESULT, COUNT, SCRATCH.
        return 0

    def write(self, offset, size, value):
        """A guest store of `size` bytes (`value`) at `offset`."""
        # TODO: CONTROL, DATA, SCRATCH.


class Board:
    """The exit handler's view of the window: which device an address reaches."""

    def __init__(self):
        self.devices = {name: HashDevice() for name in DEVICES}

    def route(self, address):
        """(device name, offset in the device) for a guest physical address,
        or None when no device answers there."""
        # TODO: every device in DEVICES, not just hash0's first registers.
        if WINDOW_BASE <= address < WINDOW_BASE + 8:
            return "hash0", address - WINDOW_BASE
        return None

    def mmio(self, address, size, is_write, value):
        """One trapped guest access: returns the value a load reads (0 for a store)."""
        target = self.route(address)
        if target is None:
            return 0
        name, offset = target
        device = self.devices[name]
        if is_write:
            device.write(offset, size, value)
            return 0
        return device.read(offset, size)

    def reset(self):
        for device in self.devices.values():
            device.reset()
            device.scratch = 0
