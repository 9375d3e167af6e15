"""The clocks: counting guest instructions, and stopping the guest on time.

Two counters, each a Unicorn hook that can also stop the guest at a limit:

  instructions   a code hook, called before every instruction: the exact
                 count, for --max-insns and the trace.  Costly (docs/design.md,
                 U6): about 4x slower guest code.
  time           a block hook, called before every translation block: the
                 guest's virtual time, which drives the CLINT's mtime and
                 every deadline (timer interrupts, UART input).  It advances
                 by the instructions in each block as the block starts, so a
                 deadline falls at the first block boundary at or after it.
                 While a machine-level interrupt is pending, it also stops
                 the guest at the first block where the interrupt can be
                 taken (the "interrupt window", as KVM calls it).  Cheap.

Both are deterministic: the same firmware and input give the same counts,
so the same output and trace.  Each counter is attached only while
something needs it; a guest that never uses time runs free, at full speed.

Both saturate: a count stops at END_OF_TIME and never wraps, so virtual
time never goes backwards, and a deadline past the end of time (a timer
2^64 instructions away) is UNLIMITED, a limit no count reaches: "never".

Two twins with the same semantics: PyCounter (the specification, Python
hooks, ~1 MIPS) and _fastpath.Counter (the same hooks in C).
"""
import ctypes

from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE
from unicorn.riscv_const import UC_RISCV_REG_MIE, UC_RISCV_REG_MSTATUS, UC_RISCV_REG_PRIV
from unicorn.unicorn_py3 import unicorn as _uc_binding

from minivm.cpu.traps import MSTATUS_MIE, PRV_M
from minivm.fastpath import fastpath

UNLIMITED = (1 << 64) - 1       # a limit: never reached
END_OF_TIME = UNLIMITED - 1     # where every count stops


def later(count, instructions):
    """The count `instructions` after `count`; UNLIMITED (never) past the end of time."""
    return min(count + instructions, UNLIMITED)


class PyCounter:
    """Pure-Python twin of _fastpath.Counter."""

    def __init__(self):
        self.count = 0
        self.limit = UNLIMITED
        self.pending = 0        # machine-level interrupts pending (mip bits the host keeps)
        self.mie = 0            # mie as last seen in M-mode
        self.window_open = False

    def count_instruction(self, uc, address, size, user_data):
        # Called before the instruction at `address` runs.  Stopping here
        # leaves pc at that instruction, not yet executed.
        if self.count >= self.limit:
            uc.emu_stop()
            return
        if self.count < END_OF_TIME:
            self.count += 1

    def count_block(self, uc, address, size, user_data):
        # Called before a translation block of `size` bytes runs: 4 bytes
        # an instruction, rounded up (a block of one 2-byte jump counts).
        if self.count >= self.limit or (self.pending and self.interrupt_window_open(uc)):
            uc.emu_stop()
            return
        self.count = min(self.count + ((size + 3) >> 2), END_OF_TIME)

    def interrupt_window_open(self, uc):
        # A machine-level interrupt is pending: can the hart take it now?
        # The guest unmasks interrupts with CSR writes or mret, which end a
        # block, so checking at each block start is checking right after them.
        if uc.reg_read(UC_RISCV_REG_PRIV) & 3 == PRV_M:
            # Unicorn lets the host read M-mode CSRs only while the hart is in M.
            self.mie = uc.reg_read(UC_RISCV_REG_MIE)
            status = uc.reg_read(UC_RISCV_REG_MSTATUS)
            self.window_open = bool(self.pending & self.mie and status & MSTATUS_MIE)
        else:
            # Below M, M-level interrupts are always on; mie's M bits can
            # only change in M-mode, so the value seen there still holds.
            self.window_open = bool(self.pending & self.mie)
        return self.window_open


class HookedCounter:
    """A counter that attaches itself to Unicorn as a code or block hook."""

    def __init__(self, uc, per_block):
        self.uc = uc
        self.per_block = per_block
        native = fastpath()
        if native is not None:
            library = _uc_binding.uclib
            native.set_register_ids(UC_RISCV_REG_MSTATUS, UC_RISCV_REG_MIE, UC_RISCV_REG_PRIV)
            self.counter = native.Counter(
                ctypes.cast(library.uc_emu_stop, ctypes.c_void_p).value,
                ctypes.cast(library.uc_reg_read, ctypes.c_void_p).value)
        else:
            self.counter = PyCounter()
        self._hook = None

    @property
    def count(self):
        return self.counter.count

    @count.setter
    def count(self, value):
        self.counter.count = min(value, END_OF_TIME)

    @property
    def attached(self):
        return self._hook is not None

    def set_limit(self, limit):
        """Stop at `limit` (None or anything past the end of time: never)."""
        self.counter.limit = UNLIMITED if limit is None else min(limit, UNLIMITED)

    @property
    def limit(self):
        return self.counter.limit

    def limit_reached(self):
        return self.counter.count >= self.counter.limit

    def attach(self):
        if self._hook is not None:
            return
        kind = UC_HOOK_BLOCK if self.per_block else UC_HOOK_CODE
        if isinstance(self.counter, PyCounter):
            callback = self.counter.count_block if self.per_block else self.counter.count_instruction
            self._hook = self.uc.hook_add(kind, callback)
        else:
            self._hook = self._add_native_hook(kind)
        # Unicorn compiles hooks into translated code: drop what was
        # translated without this one.
        self.uc.ctl_flush_tb()

    def detach(self):
        if self._hook is None:
            return
        if isinstance(self.counter, PyCounter):
            self.uc.hook_del(self._hook)
        else:
            _uc_binding.uclib.uc_hook_del(self.uc._uch, _uc_binding.uc_hook_h(self._hook))
        self._hook = None
        self.uc.ctl_flush_tb()

    def _add_native_hook(self, kind):
        # The Python binding only takes Python callbacks, so register the C
        # function from _fastpath with libunicorn's uc_hook_add directly.
        callback, user_data = self.counter.native_hook(self.per_block)
        handle = _uc_binding.uc_hook_h()
        status = _uc_binding.uclib.uc_hook_add(
            self.uc._uch, ctypes.byref(handle), kind,
            ctypes.c_void_p(callback), ctypes.c_void_p(user_data),
            ctypes.c_uint64(1), ctypes.c_uint64(0))  # begin > end: every address
        if status != 0:
            raise _uc_binding.UcError(status)
        return handle.value


class Clocks:
    """The vCPU's two counters: exact instructions, and virtual time."""

    def __init__(self, uc):
        self.instructions = HookedCounter(uc, per_block=False)
        self.time = HookedCounter(uc, per_block=True)
