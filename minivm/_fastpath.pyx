"""The fast paths of minivm, in Cython.

Each piece here has a pure-Python twin that is the specification; this file
must behave the same, only faster.  `MINIVM_PURE=1` makes minivm ignore this
module so a student can step the Python twin in pdb.

Counter: twin of minivm.cpu.clock.PyCounter.
    Unicorn hooks that count guest instructions and stop the guest at a
    limit.  In Python a hook costs about 1 us per call; in C a few ns.
"""
from libc.stdint cimport uint32_t, uint64_t

ctypedef int (*uc_emu_stop_fn)(void *uc) noexcept nogil


cdef struct CounterState:
    uint64_t count          # instructions counted so far
    uint64_t limit          # stop at the first hook call that finds count >= limit
    uc_emu_stop_fn emu_stop


cdef void count_instruction(void *uc, uint64_t address, uint32_t size,
                            void *user_data) noexcept nogil:
    # A code hook: Unicorn calls it before the instruction at `address` runs.
    # Stopping here leaves pc at that instruction, not yet executed.
    cdef CounterState *state = <CounterState *>user_data
    if state.count >= state.limit:
        state.emu_stop(uc)
        return
    state.count += 1


cdef void count_block(void *uc, uint64_t address, uint32_t size,
                      void *user_data) noexcept nogil:
    # A block hook: Unicorn calls it before a translation block of `size`
    # bytes runs.  Each 4 bytes count as one instruction (a compressed,
    # 2-byte instruction counts as half).
    cdef CounterState *state = <CounterState *>user_data
    if state.count >= state.limit:
        state.emu_stop(uc)
        return
    state.count += size >> 2


cdef class Counter:
    """A count and a limit, advanced by a native Unicorn hook."""

    cdef CounterState state

    def __init__(self, size_t emu_stop_address):
        self.state.count = 0
        self.state.limit = 0xFFFFFFFFFFFFFFFF
        self.state.emu_stop = <uc_emu_stop_fn>emu_stop_address

    @property
    def count(self):
        return self.state.count

    @count.setter
    def count(self, uint64_t value):
        self.state.count = value

    @property
    def limit(self):
        return self.state.limit

    @limit.setter
    def limit(self, uint64_t value):
        self.state.limit = value

    def native_hook(self, bint per_block):
        """(callback address, user_data address) for uc_hook_add."""
        if per_block:
            return <size_t>&count_block, <size_t>&self.state
        return <size_t>&count_instruction, <size_t>&self.state
