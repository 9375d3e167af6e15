/*
 * smode: a small S-mode kernel with Sv39 paging.
 *
 * M-mode (main) opens PMP for S-mode, delegates the three page faults
 * (12, 13, 15) to S-mode with medeleg, points stvec at strap.S and mtvec
 * at trap.S, builds a page table of 1 GiB pages, and drops to S-mode
 * with mret.  S-mode (kernel_main) turns paging on (satp, sfence.vma),
 * reads RAM through a second virtual address, then loads from, stores to
 * and jumps to a hole in the address space: its own handler prints scause,
 * sepc and stval and skips the access.  Last, an ecall from S (9) is not
 * delegated: the M-mode handler prints it and exits through the finisher,
 * status = the number of checks that failed.
 *
 * Virtual memory (Sv39, every page 1 GiB, virtual = physical except ALIAS):
 *   0x0_0000_0000  devices (finisher, CLINT, PLIC, UART)   RW
 *   0x0_8000_0000  RAM, where this image lives             RWX
 *   0x0_c000_0000  HOLE: no mapping                        page faults
 *   0x1_0000_0000  ALIAS: RAM again                        RW
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define RAM_BASE        0x80000000UL
#define HOLE            0xc0000000UL
#define ALIAS           0x100000000UL
#define GIGAPAGE        (1UL << 30)

/* Page table entry bits */
#define PTE_V   (1UL << 0)      /* valid */
#define PTE_R   (1UL << 1)
#define PTE_W   (1UL << 2)
#define PTE_X   (1UL << 3)
#define PTE_A   (1UL << 6)      /* accessed: set here so hardware need not */
#define PTE_D   (1UL << 7)      /* dirty: likewise */
#define SATP_SV39 (8UL << 60)
#define XLEN_DIGITS 16

/* The root table: 512 entries, one per GiB of the low 512 GiB. */
static uint64_t root_table[512] __attribute__((aligned(4096)));

static int failures;
static volatile uint32_t marker;

/* A leaf PTE mapping the 1 GiB page at `va` to physical `pa`. */
static void map_gigapage(uintptr_t va, uintptr_t pa, uint64_t rwx)
{
    root_table[va / GIGAPAGE] = (pa >> 12) << 10 | rwx | PTE_A | PTE_D | PTE_V;
}

static void putreg(const char *name, uintptr_t value)
{
    puts(name);
    puthex(value, XLEN_DIGITS);
}

static void result(int ok)
{
    puts(ok ? " ok\n" : " FAIL\n");
    failures += !ok;
}

/* ---- M-mode ---------------------------------------------------------- */

/* Only the ecall from S should get here: report it and end the run. */
uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)frame;
    puts("M: mcause=");
    putdec(mcause);
    putreg(" mepc=", mepc);
    putreg(" mtval=", mtval);
    uint32_t ecall = 0x00000073;
    result(mcause == CAUSE_ECALL_S && *(uint32_t *)mepc == ecall);
    puts(failures ? "smode FAILED\n" : "smode: all as expected\n");
    finish(failures);
}

static void __attribute__((noreturn)) enter_smode(void (*entry)(void))
{
    csr_clear(mstatus, MSTATUS_MPP);
    csr_set(mstatus, (uintptr_t)PRV_S << MSTATUS_MPP_SHIFT);
    csr_write(mepc, entry);
    __asm__ volatile("mret");
    __builtin_unreachable();
}

static void kernel_main(void);

int main(void)
{
    puts("M: setting up S-mode\n");
    csr_write(mtvec, trap_entry);
    csr_write(pmpaddr0, -1UL);          /* PMP entry 0: all of memory, */
    csr_write(pmpcfg0, 0x1f);           /* NAPOT, RWX */
    csr_write(medeleg, (1UL << CAUSE_FETCH_PAGE) | (1UL << CAUSE_LOAD_PAGE) |
                       (1UL << CAUSE_STORE_PAGE));
    csr_write(stvec, strap_entry);

    map_gigapage(0, 0, PTE_R | PTE_W);
    map_gigapage(RAM_BASE, RAM_BASE, PTE_R | PTE_W | PTE_X);
    map_gigapage(ALIAS, RAM_BASE, PTE_R | PTE_W);
    enter_smode(kernel_main);
}

/* ---- S-mode ---------------------------------------------------------- */

/* What the S-mode handler saw last. */
static volatile struct {
    int taken;
    uintptr_t cause, epc, tval;
} last;

uintptr_t strap_handler(uintptr_t scause, uintptr_t sepc, uintptr_t stval,
                        struct trap_frame *frame)
{
    last.taken++;
    last.cause = scause;
    last.epc = sepc;
    last.tval = stval;
    if (scause == CAUSE_FETCH_PAGE)
        return frame->x[REG_RA];        /* the jump was a call: return from it */
    return sepc + 4;                    /* skip the load or store */
}

static void check(const char *what, uintptr_t cause, uintptr_t epc, uintptr_t tval)
{
    puts("S: ");
    puts(what);
    puts(": scause=");
    putdec(last.cause);
    putreg(" sepc=", last.epc);
    putreg(" stval=", last.tval);
    result(last.taken == 1 && last.cause == cause && last.epc == epc && last.tval == tval);
    last.taken = 0;
}

/* Each runs one access that faults and returns the instruction's address. */
static uintptr_t do_load(uintptr_t addr)
{
    uintptr_t at, value;
    __asm__ volatile("lla %0, 1f\n1: ld %1, 0(%2)"
                     : "=&r"(at), "=&r"(value) : "r"(addr) : "memory");
    return at;
}

static uintptr_t do_store(uintptr_t addr)
{
    uintptr_t at;
    __asm__ volatile("lla %0, 1f\n1: sd zero, 0(%1)" : "=&r"(at) : "r"(addr) : "memory");
    return at;
}

static void __attribute__((noreturn)) kernel_main(void)
{
    uintptr_t satp = SATP_SV39 | (uintptr_t)root_table >> 12;
    csr_write(satp, satp);
    __asm__ volatile("sfence.vma" ::: "memory");
    putreg("S: paging on, satp=", csr_read(satp));
    result(csr_read(satp) == satp);

    /* The same word of RAM at two virtual addresses. */
    uintptr_t alias = ALIAS + ((uintptr_t)&marker - RAM_BASE);
    *(volatile uint32_t *)alias = 0x600dcafe;
    putreg("S: wrote 0x600dcafe at ", alias);
    puts(", read back at ");
    puthex((uintptr_t)&marker, XLEN_DIGITS);
    puts(": ");
    puthex(marker, 8);
    result(marker == 0x600dcafe);

    uintptr_t at = do_load(HOLE);
    check("load page fault", CAUSE_LOAD_PAGE, at, HOLE);
    at = do_store(HOLE);
    check("store page fault", CAUSE_STORE_PAGE, at, HOLE);
    ((void (*)(void))HOLE)();
    check("fetch page fault", CAUSE_FETCH_PAGE, HOLE, HOLE);

    puts("S: ecall to M-mode\n");
    __asm__ volatile("ecall");
    puts("S: FAIL: back from the ecall\n");
    for (;;)
        ;
}
