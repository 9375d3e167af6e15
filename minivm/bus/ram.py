"""Guest RAM: one host mmap, handed to Unicorn with mem_map_ptr.

Because the guest's memory is an ordinary host buffer, the loader, devices
doing DMA and the Cython virtqueue read and write it directly, with no copy.
Every guest-supplied address goes through `check()` first: a guest must
never make the host touch memory outside its RAM.
"""
import ctypes
import mmap

from unicorn import UC_PROT_ALL

from minivm.errors import MinivmError

PAGE = 4096


class Ram:
    def __init__(self, base, size):
        self.base = base
        self.size = size
        # An anonymous mapping is zero-filled and lazily backed: 128 MiB of
        # guest RAM costs the host only the pages the guest touches.
        try:
            self.buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except OSError as error:    # ENOMEM: more than the host lets this process map
            raise MinivmError(f"--memory {size >> 20} MiB: the host cannot map it "
                              f"({error.strerror})") from None
        self._cbuffer = (ctypes.c_char * size).from_buffer(self.buffer)

    def map_into(self, uc):
        uc.mem_map_ptr(self.base, self.size, UC_PROT_ALL, ctypes.addressof(self._cbuffer))

    def contains(self, address, length=1):
        return self.base <= address and address + length <= self.base + self.size

    def check(self, address, length):
        """The offset of [address, address+length) in the buffer, or ValueError."""
        if length < 0 or not self.contains(address, length):
            raise ValueError(f"guest range 0x{address:x}+0x{length:x} is outside RAM")
        return address - self.base

    def read(self, address, length):
        offset = self.check(address, length)
        return self.buffer[offset:offset + length]

    def write(self, address, data):
        offset = self.check(address, len(data))
        self.buffer[offset:offset + len(data)] = data

    def fill(self, address, length, byte=0):
        offset = self.check(address, length)
        self.buffer[offset:offset + length] = bytes([byte]) * length
