"""PLIC, the platform-level interrupt controller, at 0x0C00_0000 as on QEMU `virt`.

Devices raise numbered interrupt lines (the UART is 10, virtio slot n is
1+n).  The PLIC decides which hart context hears about them:

    a source becomes pending  when its device drives the line high
    a context sees it         if enabled for that context, priority > threshold,
                              and the source is not in service
    claim (read)              returns the best pending source and marks it in service
    complete (write)          ends the service

Context 0 is hart 0 in M-mode (its output is mip.MEIP), context 1 is hart 0
in S-mode (mip.SEIP), as on QEMU `virt`.  RISC-V PLIC Specification 1.0.0.

Where this follows QEMU rather than the specification: the spec's gateway
forwards a new request at complete if the line is still high ("Interrupt
Gateways").  QEMU 7.2's PLIC (hw/intc/sifive_plic.c) does not look at the
line at complete: a source is pending again only when its device next
updates the line (and pending follows each update, even while the source
is in service).  Guests rely on that.  xv6-riscv enables the UART's
THR-empty interrupt, never reads IIR, so the UART's line never drops; with
the spec's gateway the hart takes that interrupt again after every
complete and never gets anywhere.  Devices here therefore report every
update of their line, not only changes, as QEMU's do.
"""
from minivm.devices.device import Device

# -- register blocks -------------------------------------------------------------
PRIORITY = 0x000000          # 4 bytes per source: its priority (0 = never)
PENDING = 0x001000           # 1 bit per source, read-only
ENABLE = 0x002000            # per context, 0x80 apart: 1 bit per source
ENABLE_STRIDE = 0x80
CONTEXT = 0x200000           # per context, 0x1000 apart:
CONTEXT_STRIDE = 0x1000
THRESHOLD = 0x0              #   +0 priority threshold
CLAIM = 0x4                  #   +4 claim (read) / complete (write)

SOURCES = 96                 # sources 1..95, as QEMU `virt` has (0 means "none")
CONTEXTS = 2                 # hart 0 M-mode, hart 0 S-mode
PRIORITY_MASK = 0x7          # 3 priority bits


class Plic(Device):
    size = 0x600000

    def __init__(self, on_context=None):
        """on_context(context, level) drives each context's interrupt output."""
        super().__init__()
        self.on_context = on_context or (lambda context, level: None)
        self.reset()

    def reset(self):
        self.priority = [0] * SOURCES
        self.pending = set()                 # sources waiting to be claimed
        self.in_service = [False] * SOURCES  # claimed and not yet completed
        self.enable = [[False] * SOURCES for _ in range(CONTEXTS)]
        self.threshold = [0] * CONTEXTS
        self.outputs = [None] * CONTEXTS
        self.update()

    # -- the device side -------------------------------------------------------------

    def set_level(self, source, level):
        """A device updated its interrupt line (level-triggered): pending
        follows the level, as QEMU's does, even while in service."""
        if not 0 < source < SOURCES:
            return                       # no such source (0 means "none")
        if level:
            self.pending.add(source)
        else:
            self.pending.discard(source)
        self.update()

    # -- guest accesses ------------------------------------------------------------

    def read(self, offset, size):
        if offset < PENDING:
            source = offset // 4
            return self.priority[source] if 0 < source < SOURCES else 0
        if offset < ENABLE:
            word = (offset - PENDING) // 4
            return sum(1 << (source - 32 * word) for source in self.pending
                       if source // 32 == word)
        if offset < CONTEXT:
            context, word = divmod(offset - ENABLE, ENABLE_STRIDE)
            return self._bits(self.enable[context], word // 4) if context < CONTEXTS else 0
        context, register = divmod(offset - CONTEXT, CONTEXT_STRIDE)
        if context >= CONTEXTS:
            return 0
        if register == THRESHOLD:
            return self.threshold[context]
        if register == CLAIM:
            return self._claim(context)
        return 0

    def write(self, offset, size, value):
        if offset < PENDING:
            source = offset // 4
            if 0 < source < SOURCES:
                self.priority[source] = value & PRIORITY_MASK
        elif offset < ENABLE:
            return                       # pending bits are read-only
        elif offset < CONTEXT:
            context, word = divmod(offset - ENABLE, ENABLE_STRIDE)
            if context < CONTEXTS:
                self._set_bits(self.enable[context], word // 4, value)
        else:
            context, register = divmod(offset - CONTEXT, CONTEXT_STRIDE)
            if context >= CONTEXTS:
                return
            if register == THRESHOLD:
                self.threshold[context] = value & PRIORITY_MASK
            elif register == CLAIM:
                self._complete(value)
        self.update()

    def register_name(self, offset, is_write, bank=None):
        if offset < PENDING:
            return f"priority[{offset // 4}]"
        if offset < ENABLE:
            return f"pending[{(offset - PENDING) // 4}]"
        if offset < CONTEXT:
            context, word = divmod(offset - ENABLE, ENABLE_STRIDE)
            return f"enable{context}[{word // 4}]"
        context, register = divmod(offset - CONTEXT, CONTEXT_STRIDE)
        name = {THRESHOLD: "threshold", CLAIM: "complete" if is_write else "claim"}
        return f"{name.get(register, hex(register))}{context}"

    # -- claim and complete ----------------------------------------------------------

    def best_source(self, context):
        """The pending, enabled source of highest priority above threshold (0: none)."""
        best, best_priority = 0, self.threshold[context]
        for source in sorted(self.pending):          # ties go to the lowest number
            if (self.enable[context][source] and not self.in_service[source]
                    and self.priority[source] > best_priority):
                best, best_priority = source, self.priority[source]
        return best

    def _claim(self, context):
        source = self.best_source(context)
        if source:
            self.pending.discard(source)
            self.in_service[source] = True
            self.update()
        return source

    def _complete(self, source):
        # No look at the line here: see the module docstring.
        if 0 < source < SOURCES and self.in_service[source]:
            self.in_service[source] = False
            self.update()

    def update(self):
        """Recompute each context's output line; tell the board when one changes."""
        for context in range(CONTEXTS):
            level = self.best_source(context) != 0
            if level != self.outputs[context]:
                self.outputs[context] = level
                self.on_context(context, level)

    @staticmethod
    def _bits(flags, word):
        value = 0
        for bit in range(32):
            source = word * 32 + bit
            if source < SOURCES and flags[source]:
                value |= 1 << bit
        return value

    @staticmethod
    def _set_bits(flags, word, value):
        for bit in range(32):
            source = word * 32 + bit
            if 0 < source < SOURCES:
                flags[source] = bool(value >> bit & 1)
