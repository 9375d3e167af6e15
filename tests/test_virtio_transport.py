"""The virtio-mmio transport's queue setup, driven register by register.

A test here is the guest's driver: it writes the transport's registers
(minivm.devices.virtio_mmio.VirtioMmio) the way a driver's stores would
reach them, over real guest RAM (minivm.bus.Ram) with a real virtio-blk
device on a real image file, on both virtqueue twins.  Legacy (version 1)
setup takes three numbers from the guest (GuestPageSize, QueueAlign,
QueuePFN) and computes the rings from them; modern setup takes the three
addresses.  Whatever the numbers, the host must raise nothing, a queue that
goes live must lie wholly in RAM (the twins rely on it), and a refused
queue is DEVICE_NEEDS_RESET with one line saying why.

Offsets and bits are spelled out from the virtio 1.x spec ("Virtio Over
MMIO", its "Legacy interface"), not imported from the module under test.
"""
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import firmware
from minivm import Machine
from minivm.bus import Ram
from minivm.devices import virtio_blk
from minivm.devices.piodisk import DiskImage
from minivm.devices.virtio_blk import VirtioBlk
from minivm.devices.virtio_mmio import VirtioMmio

try:
    from minivm._fastpath import process_block_queue as CYTHON_TWIN
except ImportError:
    CYTHON_TWIN = None
TWINS = [pytest.param(virtio_blk.process_block_queue, id="python"),
         pytest.param(CYTHON_TWIN, id="cython", marks=pytest.mark.skipif(
             CYTHON_TWIN is None, reason="minivm._fastpath is not built"))]

GUEST_PAGE_SIZE, QUEUE_SEL, QUEUE_NUM, QUEUE_ALIGN, QUEUE_PFN = 0x28, 0x30, 0x38, 0x3C, 0x40
QUEUE_READY, QUEUE_NOTIFY, STATUS = 0x44, 0x50, 0x70
QUEUE_DESC, QUEUE_DRIVER, QUEUE_DEVICE = 0x80, 0x90, 0xA0      # low word; high at +4
ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, NEEDS_RESET = 1, 2, 4, 8, 64
VERSION_1 = 1 << 32
F_NEXT, F_WRITE, T_FLUSH = 1, 2, 4
RAM_BASE, RAM_SIZE = 0x8000_0000, 1 << 20
PAGE = 4096
U32 = 0xFFFF_FFFF


class Driver:
    """A guest's driver, reduced to its register writes."""

    def __init__(self, tmp_path, legacy, twin):
        self.ram = Ram(RAM_BASE, RAM_SIZE)
        self.image = DiskImage.from_option(str(make_image(tmp_path)))
        self.faults = []
        self.device = VirtioMmio(VirtioBlk(self.image, twin), legacy, memory=self.ram,
                                 on_fault=self.faults.append)

    def write(self, register, value):
        self.device.write(register, 4, value & U32)

    def status(self):
        return self.device.read(STATUS, 4)

    def start(self):
        """Device Initialization up to the queue: reset, ACKNOWLEDGE, DRIVER,
        the features (VERSION_1 on the modern interface), FEATURES_OK."""
        self.write(STATUS, 0)
        self.write(STATUS, ACKNOWLEDGE | DRIVER)
        if not self.device.legacy:
            self.write(0x24, 1)                      # DriverFeaturesSel: the high word
            self.write(0x20, VERSION_1 >> 32)
            self.write(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK)
        self.write(QUEUE_SEL, 0)

    def legacy_queue(self, pfn, num=8, page_size=PAGE, align=PAGE):
        self.write(GUEST_PAGE_SIZE, page_size)
        self.write(QUEUE_NUM, num)
        self.write(QUEUE_ALIGN, align)
        self.write(QUEUE_PFN, pfn)

    def modern_queue(self, desc, driver, device, num=8):
        self.write(QUEUE_NUM, num)
        for register, address in ((QUEUE_DESC, desc), (QUEUE_DRIVER, driver),
                                  (QUEUE_DEVICE, device)):
            self.write(register, address)
            self.write(register + 4, address >> 32)
        self.write(QUEUE_READY, 1)

    def go(self):
        self.write(STATUS, self.status() | DRIVER_OK)

    def close(self):
        self.image.close()


def make_image(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(64 * 512))
    return path


@pytest.fixture(params=TWINS)
def twin(request):
    return request.param


@pytest.fixture(params=[True, False], ids=["legacy", "modern"])
def legacy(request):
    return request.param


@pytest.fixture
def driver(tmp_path, legacy, twin):
    driver = Driver(tmp_path, legacy, twin)
    yield driver
    driver.close()


def flush_request(driver, desc, avail, used, num=8):
    """A FLUSH at head 0 in the rings at desc/avail/used; notify; the status byte."""
    header, status = RAM_BASE + 0x8_0000, RAM_BASE + 0x8_0100
    driver.ram.write(header, struct.pack("<IIQ", T_FLUSH, 0, 0))
    driver.ram.write(status, b"\xff")
    driver.ram.write(desc, struct.pack("<QIHHQIHH", header, 16, F_NEXT, 1, status, 1, F_WRITE, 0))
    driver.ram.write(avail, struct.pack("<HHH", 0, 1, 0))
    driver.write(QUEUE_NOTIFY, 0)
    return driver.ram.read(status, 1)[0], struct.unpack("<H", driver.ram.read(used + 2, 2))[0]


def test_a_well_formed_legacy_queue_serves_requests(tmp_path, twin):
    driver = Driver(tmp_path, True, twin)
    driver.start()
    pfn = (RAM_BASE + 0x1_0000) // PAGE
    driver.legacy_queue(pfn, num=8, page_size=PAGE, align=PAGE)
    driver.go()
    desc = pfn * PAGE
    used = desc + PAGE                      # 8 descriptors and the avail ring fit a page
    assert flush_request(driver, desc, desc + 16 * 8, used) == (0, 1)
    assert driver.status() & NEEDS_RESET == 0 and driver.faults == []
    driver.close()


def test_a_small_queue_align_packs_the_used_ring(tmp_path, twin):
    """QueueAlign 4: the used ring right after the available ring, rounded up to 4."""
    driver = Driver(tmp_path, True, twin)
    driver.start()
    pfn = (RAM_BASE + 0x1_0000) // PAGE
    driver.legacy_queue(pfn, num=8, align=4)
    driver.go()
    desc = pfn * PAGE
    avail = desc + 16 * 8
    assert flush_request(driver, desc, avail, -(-(avail + 6 + 2 * 8) // 4) * 4) == (0, 1)
    driver.close()


IN_RAM_PFN = (RAM_BASE + 0x1_0000) // PAGE
BAD_LEGACY_SETUPS = {   # name: (GuestPageSize, QueueAlign, QueuePFN, what the line says)
    "queue_align_0": (PAGE, 0, IN_RAM_PFN, "QueueAlign 0 is not a power of two"),
    "queue_align_3": (PAGE, 3, IN_RAM_PFN, "QueueAlign 3 is not a power of two"),
    "queue_align_u32": (PAGE, U32, IN_RAM_PFN, "QueueAlign 4294967295 is not a power of two"),
    "queue_align_2g": (PAGE, 1 << 31, IN_RAM_PFN, "used ring: 0x100000000+70 is outside"),
    "page_size_0": (0, PAGE, IN_RAM_PFN, "GuestPageSize 0 is not a power of two"),
    "page_size_4097": (PAGE + 1, PAGE, IN_RAM_PFN, "GuestPageSize 4097 is not a power of two"),
    "page_size_2g": (1 << 31, PAGE, IN_RAM_PFN,
                     f"descriptor table: {IN_RAM_PFN << 31:#x}+128 is outside"),
    "pfn_below_ram": (PAGE, PAGE, 1, "descriptor table: 0x1000+128 is outside guest RAM"),
    "pfn_past_ram": (PAGE, PAGE, (RAM_BASE + RAM_SIZE) // PAGE, "descriptor table: 0x80100000"),
    "pfn_u32": (PAGE, PAGE, U32, "descriptor table: 0xffffffff000+128 is outside"),
    "pfn_u32_page_2g": (1 << 31, PAGE, U32, f"descriptor table: {U32 << 31:#x}+128 is"),
    "used_ring_past_ram": (PAGE, PAGE, (RAM_BASE + RAM_SIZE - PAGE) // PAGE,
                           "used ring: 0x80100000+70 is outside guest RAM"),
}


@pytest.mark.parametrize("name", sorted(BAD_LEGACY_SETUPS))
def test_bad_legacy_setup_is_device_needs_reset(tmp_path, twin, name):
    """Never a host exception (QueueAlign 0 was a ZeroDivisionError): the
    queue is refused, the device asks for a reset, and says why once."""
    page_size, align, pfn, why = BAD_LEGACY_SETUPS[name]
    driver = Driver(tmp_path, True, twin)
    driver.start()
    driver.legacy_queue(pfn, page_size=page_size, align=align)
    driver.go()
    assert driver.status() & NEEDS_RESET
    assert len(driver.faults) == 1 and driver.faults[0].startswith(
        "DEVICE_NEEDS_RESET: queue 0 refused: ")
    assert why in driver.faults[0]
    driver.write(QUEUE_NOTIFY, 0)           # ignored: the device waits for a reset
    assert driver.device.requests == 0
    driver.write(STATUS, 0)                 # and a reset brings it back
    assert driver.status() == 0
    driver.close()


def test_sign_extended_ring_address_is_refused_with_a_hint(tmp_path, twin):
    """An RV32 driver that writes QueueDescHigh 0xFFFFFFFF for a ring at
    0x8001_0000 (a sign-extended pointer): refused, and the line says so."""
    driver = Driver(tmp_path, False, twin)
    driver.start()
    desc = RAM_BASE + 0x1_0000
    driver.modern_queue(desc | 0xFFFF_FFFF_0000_0000, desc + 0x1000, desc + 0x2000)
    driver.go()
    assert driver.status() & NEEDS_RESET
    assert driver.faults == [
        "DEVICE_NEEDS_RESET: queue 0 refused: descriptor table: 0xffffffff80010000+128 is "
        "outside guest RAM (0x80010000 sign-extended to 64 bits? cast the pointer through "
        "uint32_t)"]
    driver.close()


def test_a_refused_request_names_the_descriptor(tmp_path, twin):
    """The ring itself is fine but a buffer's address is sign-extended."""
    driver = Driver(tmp_path, False, twin)
    driver.start()
    desc = RAM_BASE + 0x1_0000
    driver.modern_queue(desc, desc + 0x1000, desc + 0x2000)
    driver.go()
    header = RAM_BASE + 0x8_0000
    driver.ram.write(header, struct.pack("<IIQ", T_FLUSH, 0, 0))
    driver.ram.write(desc, struct.pack("<QIHHQIHH", header | 0xFFFF_FFFF_0000_0000, 16, F_NEXT, 1,
                                       header + 0x100, 1, F_WRITE, 0))
    driver.ram.write(desc + 0x1000, struct.pack("<HHH", 0, 1, 0))
    driver.write(QUEUE_NOTIFY, 0)
    assert driver.status() & NEEDS_RESET
    assert driver.faults == [
        "DEVICE_NEEDS_RESET: request at head 0, descriptor 0 of the descriptor table: "
        "0xffffffff80080000+16 is outside guest RAM (0x80080000 sign-extended to 64 bits? "
        "cast the pointer through uint32_t)"]
    driver.close()


def test_the_machine_says_so_on_stderr(tmp_path, capsys):
    """The board prints the device's line on stderr, naming the device."""
    machine = Machine(firmware("hello"), virtio_blk=[f"{make_image(tmp_path)},legacy"])
    device = machine.devices["virtio0"]
    for register, value in ((STATUS, ACKNOWLEDGE | DRIVER), (QUEUE_NUM, 8), (QUEUE_ALIGN, 0),
                            (QUEUE_PFN, IN_RAM_PFN), (STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK)):
        device.write(register, 4, value)
    assert capsys.readouterr().err == (
        "minivm: virtio0: DEVICE_NEEDS_RESET: queue 0 refused: QueueAlign 0 is not a power "
        "of two\n")
    assert device.read(STATUS, 4) & NEEDS_RESET


# == random queue setups ==========================================================================
# Register writes a driver could make, in any order, with values biased to
# the edges; then DRIVER_OK and a notify.

def interesting_values():
    return st.one_of(st.sampled_from([0, 1, 2, 3, 4, 8, 16, 0x100, PAGE - 1, PAGE, PAGE + 1,
                                      1 << 16, 1 << 31, U32, U32 - 1,
                                      RAM_BASE // PAGE, (RAM_BASE + RAM_SIZE) // PAGE - 1,
                                      RAM_BASE, RAM_BASE + 0x1_0000, RAM_BASE + RAM_SIZE - 8]),
                     st.integers(RAM_BASE // PAGE, (RAM_BASE + RAM_SIZE) // PAGE),
                     st.integers(0, U32))


setup_writes = st.lists(st.tuples(
    st.sampled_from([GUEST_PAGE_SIZE, QUEUE_SEL, QUEUE_NUM, QUEUE_ALIGN, QUEUE_PFN, QUEUE_READY,
                     QUEUE_DESC, QUEUE_DESC + 4, QUEUE_DRIVER, QUEUE_DRIVER + 4, QUEUE_DEVICE,
                     QUEUE_DEVICE + 4, STATUS, QUEUE_NOTIFY]),
    interesting_values()), max_size=12)


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(writes=setup_writes, ring_bytes=st.binary(min_size=0, max_size=64))
def test_random_queue_setups(tmp_path, legacy, twin, writes, ring_bytes):
    driver = Driver(tmp_path, legacy, twin)
    try:
        driver.start()
        for register, value in writes:
            driver.write(register, value)
        driver.go()
        for state in driver.device.queue_states.values():
            # What goes live is what the twins may trust: rings wholly in RAM.
            assert driver.ram.contains(state.desc, 16 * state.size)
            assert driver.ram.contains(state.avail, 6 + 2 * state.size)
            assert driver.ram.contains(state.used, 6 + 8 * state.size)
            driver.ram.write(state.desc, ring_bytes)        # garbage descriptors
        driver.write(QUEUE_NOTIFY, 0)
        set_by_guest = any(r == STATUS and v & NEEDS_RESET for r, v in writes)
        if driver.status() & NEEDS_RESET and not set_by_guest:
            # The device set it: it said why.
            assert driver.faults and all(f.startswith("DEVICE_NEEDS_RESET: ")
                                         for f in driver.faults)
    finally:
        driver.close()
