"""Walk the guest's page tables (Sv39 on RV64, Sv32 on RV32) in software.

Unicorn translates guest virtual addresses itself while it runs the guest,
but the host sometimes needs the same answer from outside: to read the
instruction at a faulting pc that is a virtual address.  This is the walk of
RISC-V Privileged spec section 4.3.2, without the permission checks (the
host only reads what the guest already ran).
"""
PAGE_SHIFT = 12
PTE_V, PTE_R, PTE_X = 1 << 0, 1 << 1, 1 << 3

# (levels, bits of VPN per level, PTE size in bytes) per paging mode
SV32 = (2, 10, 4)
SV39 = (3, 9, 8)


def paging_mode(satp, xlen):
    """SV39, SV32, or None when translation is off (Bare)."""
    if xlen == 32:
        return SV32 if satp >> 31 else None
    return SV39 if satp >> 60 == 8 else None


def root_table(satp, xlen):
    ppn = satp & ((1 << 22) - 1) if xlen == 32 else satp & ((1 << 44) - 1)
    return ppn << PAGE_SHIFT


def translate(read_physical, satp, xlen, virtual):
    """The physical address for `virtual`, or None if it is not mapped.

    read_physical(address, size) -> int reads guest physical memory.
    """
    mode = paging_mode(satp, xlen)
    if mode is None:
        return virtual
    levels, vpn_bits, pte_size = mode
    table = root_table(satp, xlen)
    for level in reversed(range(levels)):
        vpn = (virtual >> (PAGE_SHIFT + level * vpn_bits)) & ((1 << vpn_bits) - 1)
        pte = read_physical(table + vpn * pte_size, pte_size)
        if not pte & PTE_V:
            return None
        ppn = (pte >> 10) & ((1 << 44) - 1)
        if pte & (PTE_R | PTE_X):        # a leaf: a page of 4 KiB << (level * vpn_bits)
            offset_bits = PAGE_SHIFT + level * vpn_bits
            page = (ppn << PAGE_SHIFT) & ~((1 << offset_bits) - 1)
            return page | (virtual & ((1 << offset_bits) - 1))
        table = ppn << PAGE_SHIFT
    return None
