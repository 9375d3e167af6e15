"""The fast paths of minivm, in Cython.

Each piece here has a pure-Python twin that is the specification; this file
must behave the same, only faster.  `MINIVM_PURE=1` makes minivm ignore this
module so a student can step the Python twin in pdb.

Counter: twin of minivm.cpu.clock.PyCounter.
    Unicorn hooks that count guest instructions and stop the guest at a
    limit, or when a pending interrupt can be taken.  In Python a hook costs
    about 1 us per call; in C a few ns.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

ctypedef int (*uc_emu_stop_fn)(void *uc) noexcept nogil
ctypedef int (*uc_reg_read_fn)(void *uc, int regid, void *value) noexcept nogil

# Unicorn register ids and the bits the interrupt window check needs
# (minivm/cpu/traps.py has the same numbers, with their spec references).
cdef int REG_MSTATUS = 0, REG_MIE = 0, REG_PRIV = 0
cdef uint64_t MSTATUS_MIE = 1 << 3
cdef uint64_t PRV_M = 3
# clock.END_OF_TIME: counts saturate there, below the UNLIMITED limit.
cdef uint64_t END_OF_TIME = 0xFFFFFFFFFFFFFFFE


cdef struct CounterState:
    uint64_t count          # instructions counted so far (at most END_OF_TIME)
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
    if state.count < END_OF_TIME:
        state.count += 1


cdef void count_block(void *uc, uint64_t address, uint32_t size,
                      void *user_data) noexcept nogil:
    # A block hook: Unicorn calls it before a translation block of `size`
    # bytes runs.  Each 4 bytes count as one instruction (a compressed,
    # 2-byte instruction counts as half), rounded up: a loop of one
    # compressed jump (`for (;;);` in an RV64GC kernel) must still move time.
    cdef CounterState *state = <CounterState *>user_data
    cdef uint64_t instructions = (size + 3) >> 2
    if state.count >= state.limit or (state.pending and interrupt_window_open(uc, state)):
        state.emu_stop(uc)
        return
    if instructions < END_OF_TIME - state.count:
        state.count += instructions
    else:
        state.count = END_OF_TIME


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


# ---------------------------------------------------------------------------
# process_block_queue: twin of minivm.devices.virtio_blk.process_block_queue
# (which walks the ring with minivm.devices.virtqueue).  Same checks, same
# order, same results; descriptors are read straight out of guest RAM and
# the data moves between the image file and guest RAM with preadv/pwritev,
# with no Python object per descriptor.
# ---------------------------------------------------------------------------
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from posix.types cimport off_t

cdef extern from "sys/uio.h" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t preadv(int fd, const iovec *iov, int iovcnt, off_t offset)
    ssize_t pwritev(int fd, const iovec *iov, int iovcnt, off_t offset)

cdef extern from "unistd.h" nogil:
    int fsync(int fd)

DEF DESC_SIZE = 16
DEF DESC_F_NEXT = 1
DEF DESC_F_WRITE = 2
DEF DESC_F_INDIRECT = 4
DEF AVAIL_F_NO_INTERRUPT = 1
DEF MAX_INDIRECT = 1024
DEF SECTOR = 512
DEF HEADER_SIZE = 16
DEF ID_BYTES = 20
DEF IOV_BATCH = 1024            # at most IOV_MAX iovecs per preadv/pwritev call

# Why a ring was refused: the numbers of minivm.devices.virtqueue's reasons.
DEF OUTSIDE_RAM = 1
DEF AVAIL_IDX_JUMP = 2
DEF PAST_TABLE = 3
DEF CHAIN_TOO_LONG = 4
DEF INDIRECT_REFUSED = 5
DEF INDIRECT_WITH_NEXT = 6
DEF BAD_INDIRECT_TABLE = 7
DEF OVER_4GIB = 8
DEF NO_STATUS_BYTE = 9

DEF T_IN = 0
DEF T_OUT = 1
DEF T_FLUSH = 4
DEF T_GET_ID = 8
DEF S_OK = 0
DEF S_IOERR = 1
DEF S_UNSUPP = 2


cdef struct Segment:            # one buffer of a chain (virtqueue.Buffer)
    uint64_t address
    uint32_t length
    bint writable


cdef struct Ram:                # guest RAM (virtqueue.GuestMemory)
    uint8_t *data
    uint64_t base
    uint64_t size


cdef struct Written:            # virtio_blk.WrittenRange
    bint any
    uint64_t low
    uint64_t high


cdef struct Fault:             # virtqueue.Fault; -1 for None
    int reason
    int head
    int descriptor
    bint indirect
    uint64_t address            # what these two mean depends on the reason
    uint64_t length


cdef inline void set_fault(Fault *fault, int reason, int descriptor, bint indirect,
                           uint64_t address, uint64_t length) noexcept nogil:
    fault.reason, fault.descriptor, fault.indirect = reason, descriptor, indirect
    fault.address, fault.length = address, length


cdef inline bint in_ram(Ram *ram, uint64_t address, uint64_t length) noexcept nogil:
    # Overflow-safe: every guest address and length is checked with this
    # before it is used, so the reads and writes below stay inside RAM.
    if address < ram.base:
        return False
    cdef uint64_t offset = address - ram.base
    return offset <= ram.size and length <= ram.size - offset


cdef inline uint8_t *at(Ram *ram, uint64_t address) noexcept nogil:
    return ram.data + (address - ram.base)


cdef inline uint64_t load(Ram *ram, uint64_t address, int size) noexcept nogil:
    cdef uint64_t value = 0
    cdef int i
    cdef uint8_t *p = at(ram, address)
    for i in range(size):
        value |= (<uint64_t>p[i]) << (8 * i)
    return value


cdef inline void store(Ram *ram, uint64_t address, uint64_t value, int size) noexcept nogil:
    cdef int i
    cdef uint8_t *p = at(ram, address)
    for i in range(size):
        p[i] = (value >> (8 * i)) & 0xFF


cdef inline void add_written(Written *written, uint64_t address, uint64_t length) noexcept nogil:
    cdef uint64_t end = address + length
    if not written.any:
        written.any, written.low, written.high = True, address, end
        return
    if address < written.low:
        written.low = address
    if end > written.high:
        written.high = end


cdef int walk_chain(Ram *ram, uint64_t desc, uint32_t size, bint indirect_ok, uint32_t head,
                    Segment *segments, int capacity, Fault *fault) noexcept nogil:
    """virtqueue.Virtqueue.chain: the chain's buffers into `segments`;
    returns their number, or -1 for a ChainError (described in `fault`)."""
    cdef uint64_t table = desc, total = 0, address, entry
    cdef uint32_t table_size = size, index = head, budget = size, length
    cdef uint16_t flags, following
    cdef bint in_indirect = False
    cdef int count = 0
    while True:
        if index >= table_size:
            set_fault(fault, PAST_TABLE, index, in_indirect, 0, table_size)
            return -1
        if budget == 0:
            set_fault(fault, CHAIN_TOO_LONG, index, in_indirect, 0, 0)
            return -1
        budget -= 1
        entry = table + DESC_SIZE * <uint64_t>index
        if not in_ram(ram, entry, DESC_SIZE):
            set_fault(fault, OUTSIDE_RAM, index, in_indirect, entry, DESC_SIZE)
            return -1
        address = load(ram, entry, 8)
        length = <uint32_t>load(ram, entry + 8, 4)
        flags = <uint16_t>load(ram, entry + 12, 2)
        following = <uint16_t>load(ram, entry + 14, 2)
        if flags & DESC_F_INDIRECT:
            if in_indirect or not indirect_ok:
                set_fault(fault, INDIRECT_REFUSED, index, in_indirect, 0, 0)
                return -1
            if flags & DESC_F_NEXT:
                set_fault(fault, INDIRECT_WITH_NEXT, index, in_indirect, 0, 0)
                return -1
            if length == 0 or length % DESC_SIZE or length // DESC_SIZE > MAX_INDIRECT \
                    or address % DESC_SIZE:
                set_fault(fault, BAD_INDIRECT_TABLE, index, in_indirect, address, length)
                return -1
            if not in_ram(ram, address, length):
                set_fault(fault, OUTSIDE_RAM, index, in_indirect, address, length)
                return -1
            table, table_size, index = address, length // DESC_SIZE, 0
            budget = table_size
            in_indirect = True
            continue
        if not in_ram(ram, address, length):
            set_fault(fault, OUTSIDE_RAM, index, in_indirect, address, length)
            return -1
        total += length
        if total > <uint64_t>0xFFFFFFFFu:
            set_fault(fault, OVER_4GIB, index, in_indirect, 0, 0)
            return -1
        if count == capacity:           # cannot happen: capacity is size + MAX_INDIRECT
            set_fault(fault, CHAIN_TOO_LONG, index, in_indirect, 0, 0)
            return -1
        segments[count].address = address
        segments[count].length = length
        segments[count].writable = (flags & DESC_F_WRITE) != 0
        count += 1
        if not flags & DESC_F_NEXT:
            return count
        index = following


cdef void gather(Ram *ram, Segment *segments, int count, uint64_t skip, uint64_t length,
                 uint8_t *out) noexcept nogil:
    """virtio_blk.gather: `length` bytes of the buffers after the first `skip`."""
    cdef uint64_t done = 0, take
    cdef int i
    for i in range(count):
        if skip < segments[i].length:
            take = segments[i].length - skip
            if take > length - done:
                take = length - done
            memcpy(out + done, at(ram, segments[i].address + skip), take)
            done += take
        skip = skip - segments[i].length if skip > segments[i].length else 0
        if done == length:
            return


cdef int make_iovecs(Ram *ram, Segment *segments, int count, uint64_t skip, uint64_t length,
                     iovec *iov, Written *written) noexcept nogil:
    """iovecs over `length` bytes of the buffers after `skip` (written: record them)."""
    cdef int n = 0, i
    cdef uint64_t done = 0, take
    for i in range(count):
        if done == length:
            break
        if skip >= segments[i].length:
            skip -= segments[i].length
            continue
        take = segments[i].length - skip
        if take > length - done:
            take = length - done
        iov[n].iov_base = at(ram, segments[i].address + skip)
        iov[n].iov_len = take
        if written != NULL:
            add_written(written, segments[i].address + skip, take)
        n += 1
        done += take
        skip = 0
    return n


cdef bint transfer(int fd, iovec *iov, int n, uint64_t offset, uint64_t length,
                   bint to_file) noexcept nogil:
    """All `length` bytes between the file at `offset` and the iovecs, or False."""
    cdef int first = 0, batch
    cdef ssize_t got
    cdef uint64_t done = 0, want
    cdef int k
    while first < n:
        batch = n - first if n - first < IOV_BATCH else IOV_BATCH
        want = 0
        for k in range(batch):
            want += iov[first + k].iov_len
        if to_file:
            got = pwritev(fd, iov + first, batch, <off_t>(offset + done))
        else:
            got = preadv(fd, iov + first, batch, <off_t>(offset + done))
        if got < 0 or <uint64_t>got != want:
            return False
        done += want
        first += batch
    return done == length


cdef inline bint in_range(uint64_t sector, uint64_t length, uint64_t sectors) noexcept nogil:
    # virtio_blk.in_range; no sum, so nothing wraps at sector 2^64-1.
    return length % SECTOR == 0 and sector <= sectors and length // SECTOR <= sectors - sector


cdef int serve_request(Ram *ram, Segment *segments, int count, int fd, uint64_t sectors,
                       bint read_only, const uint8_t *serial, int serial_length,
                       Written *written, uint64_t *moved, iovec *iov) noexcept nogil:
    """virtio_blk.serve_request: returns the bytes written into the chain's
    writable part, or -1 for a ChainError (no status byte)."""
    cdef int first_writable = count, i, n
    cdef uint64_t readable_bytes = 0, writable_bytes = 0, status_byte = 0, length, sector
    cdef uint32_t kind
    cdef uint8_t header[HEADER_SIZE]
    cdef uint8_t id_bytes[ID_BYTES]
    cdef int status = S_IOERR
    cdef uint64_t data_written = 0
    for i in range(count):
        if segments[i].writable:
            first_writable = i
            break
    if first_writable == count:
        return -1
    for i in range(first_writable, count):
        if not segments[i].writable:
            return -1
    i = count - 1
    while i >= first_writable and segments[i].length == 0:
        i -= 1
    if i < first_writable:
        return -1
    status_byte = segments[i].address + segments[i].length - 1
    for i in range(first_writable):
        readable_bytes += segments[i].length
    for i in range(first_writable, count):
        writable_bytes += segments[i].length
    writable_bytes -= 1
    moved[0] = 0
    if readable_bytes >= HEADER_SIZE:
        gather(ram, segments, first_writable, 0, HEADER_SIZE, header)
        kind = <uint32_t>(header[0] | header[1] << 8 | header[2] << 16 | <uint32_t>header[3] << 24)
        sector = 0
        for i in range(8):
            sector |= (<uint64_t>header[8 + i]) << (8 * i)
        if kind == T_IN:
            length = writable_bytes
            if readable_bytes == HEADER_SIZE and in_range(sector, length, sectors):
                # The ranges are recorded before the read: a failed read may
                # still have written part of them (the Python twin does the same).
                n = make_iovecs(ram, segments + first_writable, count - first_writable, 0,
                                length, iov, written)
                if transfer(fd, iov, n, sector * SECTOR, length, False):
                    status, data_written, moved[0] = S_OK, length, length
        elif kind == T_OUT:
            length = readable_bytes - HEADER_SIZE
            if writable_bytes == 0 and not read_only and in_range(sector, length, sectors):
                n = make_iovecs(ram, segments, first_writable, HEADER_SIZE, length, iov, NULL)
                if transfer(fd, iov, n, sector * SECTOR, length, True):
                    status, moved[0] = S_OK, length
        elif kind == T_FLUSH:
            if fsync(fd) == 0:       # durable before the status says so
                status = S_OK
        elif kind == T_GET_ID:
            length = writable_bytes if writable_bytes < ID_BYTES else ID_BYTES
            memset(id_bytes, 0, ID_BYTES)
            memcpy(id_bytes, serial, serial_length if serial_length < ID_BYTES else ID_BYTES)
            n = make_iovecs(ram, segments + first_writable, count - first_writable, 0, length,
                            iov, written)
            scatter_bytes(iov, n, id_bytes)
            status, data_written = S_OK, length
        else:
            status = S_UNSUPP
    at(ram, status_byte)[0] = status
    add_written(written, status_byte, 1)
    return <int>(data_written + 1)


cdef void scatter_bytes(iovec *iov, int n, const uint8_t *data) noexcept nogil:
    cdef int i
    cdef uint64_t done = 0
    for i in range(n):
        memcpy(iov[i].iov_base, data + done, iov[i].iov_len)
        done += iov[i].iov_len


cdef inline bint need_event(uint16_t event, uint16_t new, uint16_t old) noexcept nogil:
    return <uint16_t>(new - event - 1) < <uint16_t>(new - old)


cdef bint publish(Ram *ram, uint64_t avail, uint64_t used, uint32_t size, bint event_idx,
                  uint16_t last_avail, uint16_t used_idx, uint16_t old_used_idx,
                  bint *notify, Written *written, uint64_t *bad) noexcept nogil:
    """virtqueue.Virtqueue.publish, step for step; False where the Python
    twin raises ChainError (`bad`: the 2-byte field outside RAM)."""
    bad[0] = used + 2
    if not in_ram(ram, used + 2, 2):
        return False
    store(ram, used + 2, used_idx, 2)
    add_written(written, used + 2, 2)
    if event_idx:
        bad[0] = used + 4 + 8 * <uint64_t>size
        if not in_ram(ram, bad[0], 2):
            return False
        store(ram, bad[0], last_avail, 2)
        add_written(written, bad[0], 2)
        bad[0] = avail + 4 + 2 * <uint64_t>size
        if not in_ram(ram, bad[0], 2):
            return False
        notify[0] = need_event(<uint16_t>load(ram, bad[0], 2), used_idx, old_used_idx)
        return True
    bad[0] = avail
    if not in_ram(ram, avail, 2):
        return False
    notify[0] = not (load(ram, avail, 2) & AVAIL_F_NO_INTERRUPT)
    return True


def process_block_queue(buffer, uint64_t base, state, int fd, uint64_t sectors,
                        bint read_only, bytes serial):
    """Twin of virtio_blk.process_block_queue: (completed, moved, notify,
    needs_reset, low, high, fault)."""
    cdef uint8_t[::1] memory = buffer
    cdef Ram ram
    ram.data = &memory[0] if memory.shape[0] else NULL
    ram.base = base
    ram.size = memory.shape[0]
    cdef uint32_t size = state.size
    cdef uint64_t desc = state.desc, avail = state.avail, used = state.used
    cdef bint event_idx = state.event_idx, indirect = state.indirect
    cdef uint16_t last_avail = state.last_avail, used_idx = state.used_idx
    cdef uint16_t old_used_idx = used_idx, pending = 0, head
    cdef uint64_t completed = 0, moved = 0, moved_one, slot, bad = 0
    cdef Written written
    written.any = False
    cdef Fault fault
    fault.head = -1
    set_fault(&fault, 0, -1, False, 0, 0)         # reason 0: no fault
    cdef bint notify = False
    cdef int count, length = 0, capacity = size + MAX_INDIRECT
    cdef const uint8_t *serial_bytes = serial
    cdef int serial_length = len(serial)
    cdef Segment *segments = <Segment *>malloc(capacity * sizeof(Segment))
    cdef iovec *iov = <iovec *>malloc(capacity * sizeof(iovec))
    if segments == NULL or iov == NULL:
        free(segments)
        free(iov)
        raise MemoryError()
    try:
        with nogil:
            if not in_ram(&ram, avail + 2, 2):
                set_fault(&fault, OUTSIDE_RAM, -1, False, avail + 2, 2)
            else:
                pending = <uint16_t>(load(&ram, avail + 2, 2) - last_avail)
                if pending > size:
                    set_fault(&fault, AVAIL_IDX_JUMP, -1, False, avail + 2, pending)
            while not fault.reason and pending:
                pending -= 1
                slot = avail + 4 + 2 * <uint64_t>(last_avail % size)
                if not in_ram(&ram, slot, 2):
                    set_fault(&fault, OUTSIDE_RAM, -1, False, slot, 2)
                    break
                head = <uint16_t>load(&ram, slot, 2)
                last_avail += 1
                count = walk_chain(&ram, desc, size, indirect, head, segments, capacity, &fault)
                if count >= 0:
                    length = serve_request(&ram, segments, count, fd, sectors, read_only,
                                           serial_bytes, serial_length, &written, &moved_one,
                                           iov)
                    if length < 0:
                        set_fault(&fault, NO_STATUS_BYTE, -1, False, 0, 0)
                if fault.reason:
                    fault.head = head
                    break
                slot = used + 4 + 8 * <uint64_t>(used_idx % size)
                if not in_ram(&ram, slot, 8):
                    set_fault(&fault, OUTSIDE_RAM, -1, False, slot, 8)
                    break
                store(&ram, slot, head, 4)
                store(&ram, slot + 4, <uint32_t>length, 4)
                used_idx += 1
                add_written(&written, slot, 8)
                completed += 1
                moved += moved_one
            if not fault.reason and completed:
                if not publish(&ram, avail, used, size, event_idx, last_avail, used_idx,
                               old_used_idx, &notify, &written, &bad):
                    set_fault(&fault, OUTSIDE_RAM, -1, False, bad, 2)
    finally:
        free(segments)
        free(iov)
    state.last_avail = last_avail
    state.used_idx = used_idx
    low = written.low if written.any else None
    high = written.high if written.any else None
    if fault.reason:
        return completed, moved, False, True, low, high, python_fault(&fault)
    return completed, moved, notify, False, low, high, None


cdef python_fault(Fault *fault):
    from minivm.devices.virtqueue import make_fault
    return make_fault(fault.reason, None if fault.head < 0 else fault.head,
                      None if fault.descriptor < 0 else fault.descriptor, bool(fault.indirect),
                      fault.address, fault.length)


# ---------------------------------------------------------------------------
# The SIGBUS guard for passthrough windows (no Python twin: Python cannot
# catch a SIGBUS).  A file that shrinks while it is mapped leaves pages
# with nothing behind them, and the guest's next load or store there makes
# the host CPU raise SIGBUS in the middle of Unicorn's translated code.
# Python's own signal handling would only note the signal and return to
# the faulting instruction, which faults again, forever.  So this handler,
# in C: if the address is inside a guarded window, it puts a zero page
# where the file's page was (the access then completes, harmlessly), notes
# which window it was, and asks Unicorn to stop; the run loop then ends the
# run with one line naming the file.  Any other SIGBUS (a real crash, or
# one sent with kill) goes to the handler that was there before (the
# default one dumps core).
# ---------------------------------------------------------------------------
from posix.types cimport sigset_t

cdef extern from "<signal.h>" nogil:
    ctypedef struct bus_info "siginfo_t":
        int si_code             # > 0: raised by the kernel for a fault (not kill(2))
        void *si_addr
    ctypedef void (*signal_action)(int, bus_info *, void *) noexcept nogil
    cdef struct signal_setting "sigaction":
        signal_action sa_sigaction
        sigset_t sa_mask
        int sa_flags
    int sigaction(int number, const signal_setting *setting, signal_setting *previous)
    int sigemptyset(sigset_t *set)
    int raise_signal "raise" (int number)
    enum: SA_SIGINFO
    enum: SIGBUS

cdef extern from "<sys/mman.h>" nogil:
    void *mmap(void *address, size_t length, int protection, int flags, int fd, off_t offset)
    enum: PROT_READ
    enum: PROT_WRITE
    enum: MAP_PRIVATE
    enum: MAP_ANONYMOUS
    enum: MAP_FIXED

DEF MAX_GUARDED = 256
DEF HOST_PAGE = 4096

cdef struct GuardedWindow:
    size_t start, end           # host addresses of the mapping
    void *uc                    # the Unicorn engine that maps it
    uc_emu_stop_fn emu_stop

cdef GuardedWindow guarded[MAX_GUARDED]
cdef int guarded_count = 0
cdef int faulted_window = -1    # the first window that faulted, or -1
cdef size_t faulted_address = 0
cdef signal_setting previous_setting


cdef void on_sigbus(int number, bus_info *info, void *context) noexcept nogil:
    global faulted_window, faulted_address
    cdef size_t address = <size_t>info.si_addr
    cdef int i
    for i in range(guarded_count if info.si_code > 0 else 0):
        if guarded[i].start <= address < guarded[i].end:
            if mmap(<void *>(address & ~<size_t>(HOST_PAGE - 1)), HOST_PAGE,
                    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                    -1, 0) == <void *>-1:
                break               # no page to put there: crash as before
            if faulted_window < 0:
                faulted_window, faulted_address = i, address
            guarded[i].emu_stop(guarded[i].uc)
            return
    # Not ours: to the previous handler, as soon as this one returns.
    sigaction(SIGBUS, &previous_setting, NULL)
    raise_signal(SIGBUS)


def guard_window(size_t start, size_t length, size_t uc, size_t emu_stop_address):
    """Guard host addresses [start, start+length), mapped by the Unicorn
    engine `uc` (a uc_engine pointer).  The number of the window, or -1 if
    the table is full.  Windows stay mapped for the life of the process."""
    global guarded_count
    cdef signal_setting setting
    if guarded_count == MAX_GUARDED:
        return -1
    if guarded_count == 0:
        setting.sa_sigaction = on_sigbus
        sigemptyset(&setting.sa_mask)
        setting.sa_flags = SA_SIGINFO
        sigaction(SIGBUS, &setting, &previous_setting)
    guarded[guarded_count].start = start
    guarded[guarded_count].end = start + length
    guarded[guarded_count].uc = <void *>uc
    guarded[guarded_count].emu_stop = <uc_emu_stop_fn>emu_stop_address
    guarded_count += 1
    return guarded_count - 1


def window_fault():
    """(window number, host address) of the first guarded access that
    faulted, or None."""
    if faulted_window < 0:
        return None
    return faulted_window, faulted_address
