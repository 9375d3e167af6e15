"""The fast paths of minivm, in Cython.

Each piece here has a pure-Python twin that is the specification; this file
must behave the same, only faster.  `MINIVM_PURE=1` makes minivm ignore this
module so a student can step the Python twin in pdb.

InstructionCounter: twin of minivm.cpu.clock.PyInstructionCounter.
    A Unicorn code hook called before every guest instruction.  In Python that
    hook costs about 1 us per instruction; in C it costs a few nanoseconds.
"""
from libc.stdint cimport uint32_t, uint64_t

ctypedef int (*uc_emu_stop_fn)(void *uc) noexcept nogil


cdef struct CounterState:
    uint64_t count          # instructions retired (started and not stopped)
    uint64_t limit          # stop before the instruction that would exceed it
    uc_emu_stop_fn emu_stop


cdef void count_instruction(void *uc, uint64_t address, uint32_t size,
                            void *user_data) noexcept nogil:
    # Unicorn calls this before executing the instruction at `address`.
    # Stopping here leaves pc at that instruction, not yet executed.
    cdef CounterState *state = <CounterState *>user_data
    if state.count >= state.limit:
        state.emu_stop(uc)
        return
    state.count += 1


cdef class InstructionCounter:
    """Counts guest instructions in a native Unicorn code hook."""

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

    def native_hook(self):
        """(callback address, user_data address) for uc_hook_add."""
        return <size_t>&count_instruction, <size_t>&self.state
