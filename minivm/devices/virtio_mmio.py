"""The virtio-mmio transport: how a guest finds and drives a virtio device.

OASIS virtio 1.x, "Virtio Over MMIO" (version 2, modern) and its "Legacy
interface" (version 1, what QEMU `virt` shows by default).  Eight slots of
0x1000 bytes from 0x1000_1000, IRQ 1+n through the PLIC, as on QEMU `virt`;
a slot with no device reads DeviceID 0.  The device behind a transport (here
virtio_blk.VirtioBlk) provides its ID, features, config space and the work
a notify starts; the transport does the rest: feature negotiation, the
status state machine, queue setup, interrupts.
"""
from minivm.devices.device import Device
from minivm.devices.virtqueue import QueueState, describe_fault, outside_ram

# -- registers (offsets; all 32-bit except the config space) ------------------------
MAGIC_VALUE = 0x000          # "virt"
VERSION = 0x004              # 2 modern, 1 legacy
DEVICE_ID = 0x008            # 0: no device in this slot
VENDOR_ID = 0x00C
DEVICE_FEATURES = 0x010      # 32 feature bits, the word DeviceFeaturesSel picks
DEVICE_FEATURES_SEL = 0x014
DRIVER_FEATURES = 0x020
DRIVER_FEATURES_SEL = 0x024
GUEST_PAGE_SIZE = 0x028      # legacy: the unit of QueuePFN
QUEUE_SEL = 0x030
QUEUE_NUM_MAX = 0x034
QUEUE_NUM = 0x038
QUEUE_ALIGN = 0x03C          # legacy: where the used ring starts
QUEUE_PFN = 0x040            # legacy: the queue's page number (0 stops it)
QUEUE_READY = 0x044          # modern
QUEUE_NOTIFY = 0x050         # the driver's doorbell: the queue index
INTERRUPT_STATUS = 0x060
INTERRUPT_ACK = 0x064
STATUS = 0x070
QUEUE_DESC_LOW = 0x080       # modern: the three ring addresses, 64-bit each
QUEUE_DESC_HIGH = 0x084
QUEUE_DRIVER_LOW = 0x090
QUEUE_DRIVER_HIGH = 0x094
QUEUE_DEVICE_LOW = 0x0A0
QUEUE_DEVICE_HIGH = 0x0A4
CONFIG_GENERATION = 0x0FC    # modern
CONFIG = 0x100               # the device-specific config space

# The modern ring-address registers: which Queue field each half writes.
RING_ADDRESS_HALVES = {QUEUE_DESC_LOW: "desc", QUEUE_DESC_HIGH: "desc",
                       QUEUE_DRIVER_LOW: "driver", QUEUE_DRIVER_HIGH: "driver",
                       QUEUE_DEVICE_LOW: "device", QUEUE_DEVICE_HIGH: "device"}

MAGIC = 0x74726976
VENDOR = 0x554D4551          # "QEMU", what QEMU `virt` reports

# -- Status bits (spec "Device Status Field") ------------------------------------
ACKNOWLEDGE = 1
DRIVER = 2
DRIVER_OK = 4
FEATURES_OK = 8
DEVICE_NEEDS_RESET = 64
FAILED = 128

# -- InterruptStatus bits ---------------------------------------------------------
INTERRUPT_USED_BUFFER = 1
INTERRUPT_CONFIG_CHANGE = 2

VIRTIO_F_RING_INDIRECT_DESC = 28
VIRTIO_F_RING_EVENT_IDX = 29

REGISTERS = {
    MAGIC_VALUE: "MagicValue", VERSION: "Version", DEVICE_ID: "DeviceID",
    VENDOR_ID: "VendorID", DEVICE_FEATURES: "DeviceFeatures",
    DEVICE_FEATURES_SEL: "DeviceFeaturesSel", DRIVER_FEATURES: "DriverFeatures",
    DRIVER_FEATURES_SEL: "DriverFeaturesSel", GUEST_PAGE_SIZE: "GuestPageSize",
    QUEUE_SEL: "QueueSel", QUEUE_NUM_MAX: "QueueNumMax", QUEUE_NUM: "QueueNum",
    QUEUE_ALIGN: "QueueAlign", QUEUE_PFN: "QueuePFN", QUEUE_READY: "QueueReady",
    QUEUE_NOTIFY: "QueueNotify", INTERRUPT_STATUS: "InterruptStatus",
    INTERRUPT_ACK: "InterruptACK", STATUS: "Status", QUEUE_DESC_LOW: "QueueDescLow",
    QUEUE_DESC_HIGH: "QueueDescHigh", QUEUE_DRIVER_LOW: "QueueDriverLow",
    QUEUE_DRIVER_HIGH: "QueueDriverHigh", QUEUE_DEVICE_LOW: "QueueDeviceLow",
    QUEUE_DEVICE_HIGH: "QueueDeviceHigh", CONFIG_GENERATION: "ConfigGeneration",
}


class Queue:
    """The transport's view of one virtqueue while the driver sets it up."""

    def __init__(self):
        self.num = 0
        self.ready = False
        self.desc = self.driver = self.device = 0   # modern: the three ring addresses
        self.pfn = 0                                 # legacy: all three from one page number
        self.align = 4096


class VirtioMmio(Device):
    REGISTERS = REGISTERS

    def __init__(self, backend=None, legacy=False, memory=None, irq=None, on_dma=None,
                 on_fault=None):
        """backend: the device (None for an empty slot).  memory: the guest RAM
        (a minivm.bus.Ram).  irq(level) drives the interrupt line.
        on_dma(low, high) is told which guest range a notify wrote.
        on_fault(text) hears, in one line, why the device refused a queue or
        set DEVICE_NEEDS_RESET: the guest's driver only sees a status bit."""
        super().__init__()
        self.backend = backend
        self.legacy = legacy
        self.memory = memory
        self.irq = irq or (lambda level: None)
        self.on_dma = on_dma or (lambda low, high: None)
        self.on_fault = on_fault or (lambda text: None)
        self.notifies = 0            # QueueNotify writes that found requests
        self.requests = 0            # requests completed
        self.reset()

    def reset(self):
        """Status 0: everything back to power-on (spec "Device Reset")."""
        self.status = 0
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.driver_features = 0
        self.guest_page_size = 4096
        self.queue_sel = 0
        self.queues = [Queue() for _ in range(self.backend.queues if self.backend else 0)]
        self.queue_states = {}       # queue index -> QueueState, once live
        self.interrupt_status = 0
        self.config_generation = 0   # the block config never changes
        self.update_irq()

    # -- guest accesses ------------------------------------------------------------

    def read(self, offset, size):
        if offset >= CONFIG:
            return self._read_config(offset - CONFIG, size)
        if offset == MAGIC_VALUE:
            return MAGIC
        if offset == VERSION:
            return 1 if self.legacy else 2
        if offset == DEVICE_ID:
            return self.backend.device_id if self.backend else 0
        if self.backend is None:
            return 0
        if offset == VENDOR_ID:
            return VENDOR
        if offset == DEVICE_FEATURES:
            return (self._offered() >> (32 * self.device_features_sel)) & 0xFFFFFFFF \
                if self.device_features_sel < 2 else 0
        queue = self._selected()
        if offset == QUEUE_NUM_MAX:
            return self.backend.queue_size_max if queue else 0
        if offset == QUEUE_READY and not self.legacy:
            return int(queue.ready) if queue else 0
        if offset == QUEUE_PFN and self.legacy:
            return queue.pfn if queue else 0
        if offset == INTERRUPT_STATUS:
            return self.interrupt_status
        if offset == STATUS:
            return self.status
        if offset == CONFIG_GENERATION and not self.legacy:
            return self.config_generation
        return 0

    def write(self, offset, size, value):
        if self.backend is None or offset >= CONFIG:
            return                     # the block config space is read-only
        queue = self._selected()
        if offset == DEVICE_FEATURES_SEL:
            self.device_features_sel = value
        elif offset == DRIVER_FEATURES_SEL:
            self.driver_features_sel = value
        elif offset == DRIVER_FEATURES:
            self._write_driver_features(value)
        elif offset == GUEST_PAGE_SIZE and self.legacy:
            self.guest_page_size = value
        elif offset == QUEUE_SEL:
            self.queue_sel = value
        elif offset == QUEUE_NOTIFY:
            self._notify(value)
        elif offset == INTERRUPT_ACK:
            self.interrupt_status &= ~value
            self.update_irq()
        elif offset == STATUS:
            self._write_status(value)
        elif queue is not None:
            self._write_queue(queue, offset, value)

    def register_name(self, offset, is_write, bank=None):
        if offset >= CONFIG:
            return f"config+0x{offset - CONFIG:x}"
        return REGISTERS.get(offset, f"+0x{offset:x}")

    # -- features and status ----------------------------------------------------------

    def _offered(self):
        return self.backend.features(modern=not self.legacy)

    def _write_driver_features(self, value):
        if self.status & FEATURES_OK or self.driver_features_sel > 1:
            return                     # too late, or no such word
        shift = 32 * self.driver_features_sel
        self.driver_features = self.driver_features & ~(0xFFFFFFFF << shift) | value << shift

    def _write_status(self, value):
        """The driver's initialisation steps (spec 3.1.1): ACKNOWLEDGE, DRIVER,
        FEATURES_OK (refused if it asked for anything not offered), DRIVER_OK.
        Writing 0 resets."""
        if value == 0:
            return self.reset()
        if value & FEATURES_OK and not self.status & FEATURES_OK and not self._features_ok():
            value &= ~FEATURES_OK      # the driver reads Status back and sees it refused
        if self.legacy and value & DRIVER_OK:
            value |= FEATURES_OK       # legacy drivers have no FEATURES_OK step
        self.status = value | (self.status & DEVICE_NEEDS_RESET)

    def _features_ok(self):
        """Any subset of what was offered, with or without VIRTIO_F_VERSION_1.

        A modern driver MUST accept VERSION_1, but the device only MAY fail
        if it does not (spec "Reserved Feature Bits"), and drivers that
        write just DriverFeatures word 0 never accept it (bit 32 is in word
        1): xv6-riscv's is one.  QEMU 7.2 keeps FEATURES_OK for them and
        drives the rings as usual, so minivm does the same."""
        return not self.driver_features & ~self._offered()

    def _negotiated(self, bit):
        return bool(self.driver_features >> bit & 1)

    # -- queues -------------------------------------------------------------------------

    def _selected(self):
        return self.queues[self.queue_sel] if self.queue_sel < len(self.queues) else None

    def _write_queue(self, queue, offset, value):
        if offset == QUEUE_NUM:
            queue.num = value
        elif self.legacy:
            if offset == QUEUE_ALIGN:
                queue.align = value
            elif offset == QUEUE_PFN:
                queue.pfn = value
                self._go_live(self.queue_sel, queue, value != 0)
        else:
            if offset == QUEUE_READY:
                self._go_live(self.queue_sel, queue, value & 1)
            if offset in RING_ADDRESS_HALVES and not queue.ready:
                name, high = RING_ADDRESS_HALVES[offset], offset & 4
                old = getattr(queue, name)
                setattr(queue, name, (old & 0xFFFFFFFF) | value << 32 if high
                        else (old & ~0xFFFFFFFF) | value)

    def _go_live(self, index, queue, live):
        queue.ready = bool(live)
        if not live:
            self.queue_states.pop(index, None)
            return
        problem = self._legacy_layout_problem(queue) if self.legacy else None
        if problem is None:
            desc, avail, used = self._legacy_rings(queue) if self.legacy else \
                (queue.desc, queue.driver, queue.device)
            problem = self._queue_problem(queue.num, desc, avail, used)
        if problem is not None:
            return self._needs_reset(f"queue {index} refused: {problem}")
        self.queue_states[index] = QueueState(
            queue.num, desc, avail, used,
            event_idx=self._negotiated(VIRTIO_F_RING_EVENT_IDX),
            indirect=self._negotiated(VIRTIO_F_RING_INDIRECT_DESC))

    def _legacy_layout_problem(self, queue):
        """The legacy interface says both units "should be a power of 2"; a
        driver that writes anything else (0, say) gets DEVICE_NEEDS_RESET
        rather than a queue at an address nobody meant."""
        if not is_power_of_two(self.guest_page_size):
            return f"GuestPageSize {self.guest_page_size} is not a power of two"
        if not is_power_of_two(queue.align):
            return f"QueueAlign {queue.align} is not a power of two"
        return None

    def _legacy_rings(self, queue):
        """Legacy layout: descriptors, then the available ring, then the
        used ring at the next QueueAlign boundary, from QueuePFN pages."""
        desc = queue.pfn * self.guest_page_size
        avail = desc + 16 * queue.num
        used = -(-(avail + 6 + 2 * queue.num) // queue.align) * queue.align
        return desc, avail, used

    def _queue_problem(self, size, desc, avail, used):
        """Checked once, when the queue goes live (Firecracker's Queue::is_valid):
        why the queue cannot be used, or None."""
        if not (0 < size <= self.backend.queue_size_max and is_power_of_two(size)):
            return f"QueueNum {size} is not a power of two up to {self.backend.queue_size_max}"
        for name, address, length, align in (("descriptor table", desc, 16 * size, 16),
                                             ("available ring", avail, 6 + 2 * size, 2),
                                             ("used ring", used, 6 + 8 * size, 4)):
            if address % align:
                return f"{name} at {address:#x} is not {align}-byte aligned"
            if not self.memory.contains(address, length):
                return f"{name}: {outside_ram(address, length)}"
        return None

    def _notify(self, index):
        state = self.queue_states.get(index)
        if state is None or not self.status & DRIVER_OK or self.status & DEVICE_NEEDS_RESET:
            return
        completed, moved, notify, broken, low, high, fault = self.backend.process(
            self.memory.buffer, self.memory.base, state)
        if completed:
            self.notifies += 1
            self.requests += completed
            self.payload_bytes += moved
        if low is not None:
            self.on_dma(low, high)
        if broken:
            return self._needs_reset(describe_fault(fault))
        if notify:
            self.interrupt_status |= INTERRUPT_USED_BUFFER
            self.update_irq()

    def _needs_reset(self, why):
        """The driver broke the rules: stop, tell it (spec 2.1.2), and say why."""
        self.on_fault(f"DEVICE_NEEDS_RESET: {why}")
        self.status |= DEVICE_NEEDS_RESET
        if self.status & DRIVER_OK:
            self.interrupt_status |= INTERRUPT_CONFIG_CHANGE
            self.update_irq()

    # -- config space -----------------------------------------------------------------

    def _read_config(self, offset, size):
        if self.backend is None:
            return 0
        config = self.backend.config()
        if offset + size > len(config):
            return 0
        return int.from_bytes(config[offset:offset + size], "little")

    def update_irq(self):
        self.irq(bool(self.interrupt_status))


def is_power_of_two(value):
    return value > 0 and value & (value - 1) == 0
