"""The fast paths of minivm, in Cython.

Each piece here has a pure-Python twin that is the specification; this file
must behave the same, only faster.  `MINIVM_PURE=1` makes minivm ignore this
module so a student can step the Python twin in pdb.

Counter: twin of minivm.cpu.clock.PyCounter.
    Unicorn hooks that count guest instructions and stop the guest at a
    limit, or when a pending interrupt can be taken.  In Python a hook costs
    about 1 us per call; in C a few ns.
"""
from libc.stdint cimport uint32_t, uint64_t

ctypedef int (*uc_emu_stop_fn)(void *uc) noexcept nogil
ctypedef int (*uc_reg_read_fn)(void *uc, int regid, void *value) noexcept nogil

# Unicorn register ids and the bits the interrupt window check needs
# (minivm/cpu/traps.py has the same numbers, with their spec references).
cdef int REG_MSTATUS = 0, REG_MIE = 0, REG_PRIV = 0
cdef uint64_t MSTATUS_MIE = 1 << 3
cdef uint64_t PRV_M = 3


cdef struct CounterState:
    uint64_t count          # instructions counted so far
    uint64_t limit          # stop at the first hook call that finds count >= limit
    uint64_t pending        # machine-level interrupts pending (mip bits the host keeps)
    uint64_t mie            # mie as last seen in M-mode
    int window_open         # set when the hook stopped because an interrupt can be taken
    uc_emu_stop_fn emu_stop
    uc_reg_read_fn reg_read


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
    if state.count >= state.limit or (state.pending and interrupt_window_open(uc, state)):
        state.emu_stop(uc)
        return
    state.count += size >> 2


cdef bint interrupt_window_open(void *uc, CounterState *state) noexcept nogil:
    # A machine-level interrupt is pending: can the hart take it now?  The
    # guest unmasks interrupts with CSR writes or mret, which end a block,
    # so checking at each block start is checking right after them.
    cdef uint64_t privilege = 0, status = 0, mie = 0
    state.reg_read(uc, REG_PRIV, &privilege)
    if (privilege & 3) == PRV_M:
        # Unicorn lets the host read M-mode CSRs only while the hart is in M.
        state.reg_read(uc, REG_MIE, &mie)
        state.reg_read(uc, REG_MSTATUS, &status)
        state.mie = mie
        state.window_open = (state.pending & mie) != 0 and (status & MSTATUS_MIE) != 0
    else:
        # Below M, M-level interrupts are always on; mie's M bits can only
        # change in M-mode, so the value seen there still holds.
        state.window_open = (state.pending & state.mie) != 0
    return state.window_open


def set_register_ids(int mstatus, int mie, int privilege):
    global REG_MSTATUS, REG_MIE, REG_PRIV
    REG_MSTATUS, REG_MIE, REG_PRIV = mstatus, mie, privilege


cdef class Counter:
    """A count and a limit, advanced by a native Unicorn hook."""

    cdef CounterState state

    def __init__(self, size_t emu_stop_address, size_t reg_read_address):
        self.state.count = 0
        self.state.limit = 0xFFFFFFFFFFFFFFFF
        self.state.pending = 0
        self.state.mie = 0
        self.state.window_open = 0
        self.state.emu_stop = <uc_emu_stop_fn>emu_stop_address
        self.state.reg_read = <uc_reg_read_fn>reg_read_address

    @property
    def pending(self):
        return self.state.pending

    @pending.setter
    def pending(self, uint64_t value):
        self.state.pending = value

    @property
    def mie(self):
        return self.state.mie

    @mie.setter
    def mie(self, uint64_t value):
        self.state.mie = value

    @property
    def window_open(self):
        return bool(self.state.window_open)

    @window_open.setter
    def window_open(self, value):
        self.state.window_open = 1 if value else 0

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
