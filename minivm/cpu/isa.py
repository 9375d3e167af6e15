"""Just enough of the RISC-V instruction encoding for the host's needs.

A hypervisor sometimes has to look at the instruction the guest was running:
to find the address a faulting load or store used (for mtval/stval), or to
finish a load from a device register after stopping the vCPU in the middle of
it (KVM's MMIO emulation does the same).  This module decodes exactly that:
loads, stores and atomics, in their 32-bit and compressed (C) forms, and the
CSR instructions the host emulates.  RISC-V Unprivileged ISA, chapters 2, 8
(A), 16 (C) and 9 (Zicsr).
"""
from collections import namedtuple

# A memory access: `base` register, `offset`, access `size` in bytes,
# `rd` (the destination of a load, else None), `signed` (a load that
# sign-extends), `length` of the instruction in bytes (2 or 4).
MemoryAccess = namedtuple("MemoryAccess", "base offset size rd signed is_store length")

OPCODE_LOAD, OPCODE_LOAD_FP = 0x03, 0x07
OPCODE_STORE, OPCODE_STORE_FP = 0x23, 0x27
OPCODE_AMO = 0x2F
OPCODE_SYSTEM = 0x73

# funct3 of integer loads: (size, signed)
LOAD_WIDTHS = {0: (1, True), 1: (2, True), 2: (4, True), 3: (8, True),
               4: (1, False), 5: (2, False), 6: (4, False)}
SP = 2


def instruction_length(first_halfword):
    """4 for a 32-bit instruction, 2 for a compressed one (low bits != 0b11)."""
    return 4 if first_halfword & 0b11 == 0b11 else 2


def bits(value, high, low):
    return (value >> low) & ((1 << (high - low + 1)) - 1)


def sign_extend(value, width):
    sign = 1 << (width - 1)
    return (value & (sign - 1)) - (value & sign)


def decode_memory_access(insn):
    """The MemoryAccess an instruction makes, or None if it makes none.

    `insn` holds the instruction's bits (16 or 32 of them).
    """
    if instruction_length(insn) == 2:
        return _decode_compressed(insn & 0xFFFF)
    opcode, funct3, rd, rs1 = insn & 0x7F, bits(insn, 14, 12), bits(insn, 11, 7), bits(insn, 19, 15)
    if opcode == OPCODE_LOAD and funct3 in LOAD_WIDTHS:
        size, signed = LOAD_WIDTHS[funct3]
        return MemoryAccess(rs1, sign_extend(bits(insn, 31, 20), 12), size, rd, signed, False, 4)
    if opcode == OPCODE_LOAD_FP:
        return MemoryAccess(rs1, sign_extend(bits(insn, 31, 20), 12), 1 << funct3, None,
                            False, False, 4)
    if opcode in (OPCODE_STORE, OPCODE_STORE_FP):
        offset = sign_extend(bits(insn, 31, 25) << 5 | bits(insn, 11, 7), 12)
        return MemoryAccess(rs1, offset, 1 << funct3, None, False, True, 4)
    if opcode == OPCODE_AMO:
        is_load_reserved = bits(insn, 31, 27) == 0b00010
        return MemoryAccess(rs1, 0, 1 << funct3, rd, True, not is_load_reserved, 4)
    return None


def _decode_compressed(insn):
    quadrant, funct3 = insn & 0b11, bits(insn, 15, 13)
    if quadrant == 0b00 and funct3 != 0b000 and funct3 != 0b100:
        rs1, rd = 8 + bits(insn, 9, 7), 8 + bits(insn, 4, 2)
        word = bits(insn, 12, 10) << 3 | bits(insn, 6, 6) << 2 | bits(insn, 5, 5) << 6
        double = bits(insn, 12, 10) << 3 | bits(insn, 6, 5) << 6
        is_store = funct3 >= 0b101
        kind = funct3 & 0b011      # 1: c.fld/c.fsd, 2: c.lw/c.sw, 3: c.ld/c.sd
        size, offset = (4, word) if kind == 2 else (8, double)
        integer = kind != 1
        return MemoryAccess(rs1, offset, size, rd if integer and not is_store else None,
                            True, is_store, 2)
    if quadrant == 0b10 and funct3 in (0b001, 0b010, 0b011):   # c.fldsp, c.lwsp, c.ldsp
        rd = bits(insn, 11, 7)
        if funct3 == 0b010:
            size, offset = 4, bits(insn, 12, 12) << 5 | bits(insn, 6, 4) << 2 | bits(insn, 3, 2) << 6
        else:
            size, offset = 8, bits(insn, 12, 12) << 5 | bits(insn, 6, 5) << 3 | bits(insn, 4, 2) << 6
        return MemoryAccess(SP, offset, size, rd if funct3 != 0b001 else None, True, False, 2)
    if quadrant == 0b10 and funct3 in (0b101, 0b110, 0b111):   # c.fsdsp, c.swsp, c.sdsp
        if funct3 == 0b110:
            size, offset = 4, bits(insn, 12, 9) << 2 | bits(insn, 8, 7) << 6
        else:
            size, offset = 8, bits(insn, 12, 10) << 3 | bits(insn, 9, 7) << 6
        return MemoryAccess(SP, offset, size, None, False, True, 2)
    return None


# -- CSR instructions (Zicsr) ---------------------------------------------------

CsrAccess = namedtuple("CsrAccess", "csr rd rs1 funct3")

CSRRW, CSRRS, CSRRC = 1, 2, 3           # funct3; +4 for the immediate forms


def decode_csr_access(insn):
    """The CsrAccess of a csrrw/csrrs/csrrc(i) instruction, or None."""
    if instruction_length(insn) != 4 or insn & 0x7F != OPCODE_SYSTEM:
        return None
    funct3 = bits(insn, 14, 12)
    if funct3 in (0, 4):
        return None   # ecall/ebreak/mret/wfi..., not a CSR access
    return CsrAccess(bits(insn, 31, 20), bits(insn, 11, 7), bits(insn, 19, 15), funct3)
