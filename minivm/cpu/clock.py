"""The instruction clock: counts guest instructions, stops at a budget.

Counting is what makes a run deterministic (the count, not host time, says
where the guest is) and what stops a runaway guest (--max-insns).  It costs:
Unicorn calls a code hook before every instruction (DESIGN.md fact 6), so
minivm attaches the counter only while something needs it (a budget, the
trace) and lets the guest run free otherwise.

Two twins with the same semantics:
  PyInstructionCounter   the specification, a Python hook (~1 MIPS)
  _fastpath.InstructionCounter   the same hook in C (~200 MIPS)
"""
import ctypes

from unicorn import UC_HOOK_CODE
from unicorn.unicorn_py3 import unicorn as _uc_binding

from minivm.fastpath import fastpath

UNLIMITED = (1 << 64) - 1


class PyInstructionCounter:
    """Pure-Python twin of _fastpath.InstructionCounter."""

    def __init__(self):
        self.count = 0
        self.limit = UNLIMITED

    def hook(self, uc, address, size, user_data):
        # Called before the instruction at `address` runs.  Stopping here
        # leaves pc at that instruction, not yet executed.
        if self.count >= self.limit:
            uc.emu_stop()
            return
        self.count += 1


class InstructionClock:
    """Attaches a counter to a Unicorn core while counting is wanted."""

    def __init__(self, uc):
        self.uc = uc
        native = fastpath()
        if native is not None:
            emu_stop = ctypes.cast(_uc_binding.uclib.uc_emu_stop, ctypes.c_void_p).value
            self.counter = native.InstructionCounter(emu_stop)
        else:
            self.counter = PyInstructionCounter()
        self._hook = None

    @property
    def count(self):
        return self.counter.count

    @property
    def attached(self):
        return self._hook is not None

    def set_limit(self, limit):
        self.counter.limit = UNLIMITED if limit is None else limit

    def limit_reached(self):
        return self.counter.count >= self.counter.limit

    def attach(self):
        if self._hook is None:
            if isinstance(self.counter, PyInstructionCounter):
                self._hook = self.uc.hook_add(UC_HOOK_CODE, self.counter.hook)
            else:
                self._hook = self._add_native_hook()

    def detach(self):
        if self._hook is None:
            return
        if isinstance(self.counter, PyInstructionCounter):
            self.uc.hook_del(self._hook)
        else:
            _uc_binding.uclib.uc_hook_del(self.uc._uch, _uc_binding.uc_hook_h(self._hook))
        self._hook = None

    def _add_native_hook(self):
        # The Python binding only takes Python callbacks, so register the C
        # function from _fastpath with libunicorn's uc_hook_add directly.
        callback, user_data = self.counter.native_hook()
        handle = _uc_binding.uc_hook_h()
        status = _uc_binding.uclib.uc_hook_add(
            self.uc._uch, ctypes.byref(handle), UC_HOOK_CODE,
            ctypes.c_void_p(callback), ctypes.c_void_p(user_data),
            ctypes.c_uint64(1), ctypes.c_uint64(0))  # begin > end: every address
        if status != 0:
            raise _uc_binding.UcError(status)
        return handle.value
