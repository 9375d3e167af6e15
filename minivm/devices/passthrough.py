"""Passthrough: a host file or device mapped straight into guest memory.

The third device model.  The host maps the file with mmap(2) and hands the
pages to Unicorn (`mem_map_ptr`, docs/design.md, U7): from then on the guest's
ordinary loads and stores reach the file's pages with no VM exit at all, as
a device assigned to a VM with VFIO reaches the hardware.  The host takes
no trap, so it counts none, and it cannot see the accesses (nor trace them).

    --passthrough PATH@ADDR          read-write: stores reach the file (MAP_SHARED)
    --passthrough PATH@ADDR,ro       read-only: a store is a store access fault in the guest
    --passthrough PATH@ADDR,private  copy-on-write: the guest changes its own copy only

The file's size must be a positive multiple of 4 KiB.  mmap works in whole
pages, and a guest access to the part of a page past the end of the file
would raise SIGBUS in the host, so minivm refuses such files instead of
padding them (pad one with `truncate -s %4K FILE`).  A file that shrinks
while the guest runs (another program truncates it) does the same to pages
that were whole: the SIGBUS guard in minivm._fastpath catches that and the
run ends with one line naming the file.  (Without the compiled extension
there is no guard, and the host dies of the SIGBUS.)
"""
import ctypes
import mmap
import os

from unicorn import UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE

from minivm import hostfiles
from minivm.errors import MinivmError

PAGE = 4096
MODES = ("rw", "ro", "private")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_FAILED = ctypes.c_void_p(-1).value
MS_SYNC = 4              # msync(2): write back and wait (Linux's value; Python's mmap lacks it)


def parse_option(text):
    """`PATH@ADDR[,ro|,private]` -> (path, address, mode); `,,` is a comma in PATH."""
    target, flags = hostfiles.split_option(text)
    path, at, address = target.rpartition("@")
    if not at or not path or len(flags) > 1:
        raise MinivmError(f"bad passthrough {text!r}: use PATH@ADDR[,ro|,private] "
                          f"(,, for a comma in PATH)")
    digits = address.lower().removeprefix("0x")
    if not digits or any(digit not in "0123456789abcdef" for digit in digits):
        raise MinivmError(f"bad passthrough address {address!r}: use hex, e.g. 0x40000000")
    return path, int(digits, 16), (flags or ["rw"])[0]


class PassthroughWindow:
    """One file, mapped at one guest physical address."""

    def __init__(self, path, address, mode="rw"):
        if mode not in MODES:
            raise MinivmError(f"bad passthrough mode {mode!r}: use ro or private")
        if address < 0 or address % PAGE:
            raise MinivmError(f"passthrough address 0x{address:x} is not 4 KiB aligned")
        self.path, self.address, self.mode = path, address, mode
        self.guard = None        # its number in the SIGBUS guard, once mapped
        fd, info = hostfiles.open_host_file(path, kinds=(hostfiles.REGULAR, hostfiles.BLOCK),
                                            write=mode == "rw", what="passthrough file")
        try:
            self.size = hostfiles.size_of(fd, info)
            if self.size == 0 or self.size % PAGE:
                raise MinivmError(f"{path}: size {self.size} is not a positive multiple of "
                                  f"4096 bytes (mmap maps whole pages; pad it with "
                                  f"truncate -s %4K)")
            self.pointer = self._map(fd)
        finally:
            os.close(fd)     # the mapping keeps the file; the descriptor is not needed

    @classmethod
    def from_option(cls, text):
        """`PATH@ADDR[,ro|,private]`, as --passthrough takes it."""
        return cls(*parse_option(text))

    def _map(self, fd):
        protection = mmap.PROT_READ | (0 if self.mode == "ro" else mmap.PROT_WRITE)
        sharing = mmap.MAP_PRIVATE if self.mode == "private" else mmap.MAP_SHARED
        pointer = _libc.mmap(None, self.size, protection, sharing, fd, 0)
        if pointer in (None, MAP_FAILED):
            raise MinivmError(f"{self.path}: cannot be mapped ({os.strerror(ctypes.get_errno())})")
        return pointer

    @property
    def guest_protection(self):
        if self.mode == "ro":
            return UC_PROT_READ | UC_PROT_EXEC
        return UC_PROT_READ | UC_PROT_WRITE | UC_PROT_EXEC

    def map_into(self, uc):
        uc.mem_map_ptr(self.address, self.size, self.guest_protection, self.pointer)
        self.guard = _guard(self, uc)

    def fault(self):
        """The guest physical address of an access that found the file
        shrunk under the mapping (SIGBUS, caught), or None."""
        native = _sigbus_guard()
        fault = native.window_fault() if native is not None else None
        if fault is None or fault[0] != self.guard:
            return None
        return self.address + fault[1] - self.pointer

    def sync(self):
        """Push the guest's stores to the file (a read-write window only)."""
        if self.mode == "rw":
            _libc.msync(self.pointer, self.size, MS_SYNC)

    def check_address_width(self, bits):
        """The window must lie below 2**bits, the guest's physical address space."""
        if self.address + self.size > 1 << bits:
            raise MinivmError(f"passthrough {self.path} at 0x{self.address:x}: ends past the "
                              f"guest's {bits}-bit physical address space")

    def describe(self):
        return (f"{self.path} -> 0x{self.address:x}-0x{self.address + self.size - 1:x} "
                f"({self.mode}, {self.size // 1024} KiB)")


def _sigbus_guard():
    """minivm._fastpath, which holds the SIGBUS guard, or None if it is not
    built.  Used even with MINIVM_PURE=1: the guard has no Python twin."""
    try:
        from minivm import _fastpath
    except ImportError:
        return None
    return _fastpath


def _guard(window, uc):
    """Guard the window's host pages against SIGBUS: its number, or None."""
    from unicorn.unicorn_py3 import unicorn as binding
    native = _sigbus_guard()
    if native is None:
        return None
    return native.guard_window(window.pointer, window.size,
                               ctypes.cast(uc._uch, ctypes.c_void_p).value,
                               ctypes.cast(binding.uclib.uc_emu_stop, ctypes.c_void_p).value)
