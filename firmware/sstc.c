/*
 * sstc: the S-mode timer as current xv6-riscv sets it up (Sstc).
 *
 * M-mode (main), as xv6's start.c: delegate the supervisor timer interrupt
 * (mideleg), enable it (sie.STIE), set menvcfg.STCE so S-mode may use
 * stimecmp, arm stimecmp, drop to S-mode.  It first prints which bits of
 * menvcfg and senvcfg stick when all ones are written.  It leaves
 * mcounteren.TM clear on purpose: S-mode's first read of time must trap
 * to M as an illegal instruction; the handler then sets mcounteren.TM
 * (what xv6 does up front) and runs the read again.  Two more accesses
 * S-mode may not make must trap too: reading menvcfg (M only) and
 * writing time (read-only); the handler skips those.
 *
 * S-mode (kernel_main) takes TICKS timer interrupts; each time its handler
 * reads time, checks the interrupt did not come before stimecmp, and
 * re-arms stimecmp INTERVAL ticks on, as xv6's clockintr does.  Last,
 * sip.STIP must follow stimecmp: clear for one far away, set for one in
 * the past.  Exit status: the number of checks that failed.
 *
 * On RV32 (sstc-rv32) the 64-bit registers are two halves each:
 * stimecmp/stimecmph, menvcfg/menvcfgh.
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define INTERVAL        10000           /* ticks: 1 ms at QEMU's 10 MHz */
#define TICKS           5
#define IRQ_S_TIMER     5
#define MIP_STIP        (1UL << IRQ_S_TIMER)
#define MENVCFG_STCE    (1ULL << 63)
#define COUNTEREN_TM    (1UL << 1)

static volatile int illegal;
static volatile int ticks, early;
static int failures;

#if __riscv_xlen == 64
static void write_stimecmp(uint64_t when)
{
    csr_write(stimecmp, when);
}

static uint64_t read_stimecmp(void)
{
    return csr_read(stimecmp);
}

static uint64_t read_menvcfg(void)
{
    return csr_read(menvcfg);
}

static void set_menvcfg(uint64_t bits)
{
    csr_set(menvcfg, bits);
}
#else
/* Low half to all ones first, so no moment in between is a deadline in the past. */
static void write_stimecmp(uint64_t when)
{
    csr_write(stimecmp, UINT32_MAX);
    csr_write(stimecmph, (uint32_t)(when >> 32));
    csr_write(stimecmp, (uint32_t)when);
}

static uint64_t read_stimecmp(void)
{
    return (uint64_t)csr_read(stimecmph) << 32 | csr_read(stimecmp);
}

static uint64_t read_menvcfg(void)
{
    return (uint64_t)csr_read(menvcfgh) << 32 | csr_read(menvcfg);
}

static void set_menvcfg(uint64_t bits)
{
    csr_set(menvcfg, (uint32_t)bits);
    csr_set(menvcfgh, (uint32_t)(bits >> 32));
}
#endif

static void result(int ok)
{
    puts(ok ? " ok\n" : " FAIL\n");
    failures += !ok;
}

static void __attribute__((noreturn)) unexpected(const char *mode, uintptr_t cause)
{
    puts(mode);
    puts(": unexpected trap, cause=");
    puthex(cause, 16);
    putc('\n');
    finish(1);
}

/* M-mode: S-mode's illegal instructions (not delegated) come here. */
uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)frame;
    if (mcause != CAUSE_ILLEGAL)
        unexpected("M", mcause);
    illegal++;
    puts("M: illegal instruction from S: ");
    puthex(mtval, 8);
    if (!(csr_read(mcounteren) & COUNTEREN_TM)) {
        puts(", mcounteren.TM clear: set it, run it again\n");
        csr_set(mcounteren, COUNTEREN_TM);
        return mepc;
    }
    puts(", skipped\n");
    return mepc + 4;
}

/* S-mode: the timer interrupt, handled as xv6's clockintr does. */
uintptr_t strap_handler(uintptr_t scause, uintptr_t sepc, uintptr_t stval,
                        struct trap_frame *frame)
{
    (void)stval;
    (void)frame;
    if (scause != (CAUSE_INTERRUPT | IRQ_S_TIMER))
        unexpected("S", scause);
    uint64_t now = read_time();
    early += now < read_stimecmp();
    ticks++;
    write_stimecmp(now + INTERVAL);
    return sepc;
}

static void __attribute__((noreturn)) kernel_main(void)
{
    uint64_t start = read_time();
    puts("S: read time once mcounteren.TM was set:");
    result(illegal == 1 && start > 0);
    __asm__ volatile("csrr t0, menvcfg" ::: "t0");
    __asm__ volatile("csrw time, zero");
    puts("S: menvcfg read and time write refused:");
    result(illegal == 3);

    csr_set(sstatus, MSTATUS_SIE);
    while (ticks < TICKS)
        wfi();
    csr_clear(sstatus, MSTATUS_SIE);
    puts("S: 5 timer interrupts, none before its stimecmp:");
    result(ticks == TICKS && !early && read_time() - start >= (TICKS - 1) * INTERVAL);

    write_stimecmp(UINT64_MAX);
    puts("S: sip.STIP clear with stimecmp far away:");
    result(!(csr_read(sip) & MIP_STIP));
    write_stimecmp(0);
    puts("S: sip.STIP set with stimecmp in the past:");
    result(csr_read(sip) & MIP_STIP);
    write_stimecmp(UINT64_MAX);
    finish(failures);
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    csr_write(pmpaddr0, -1UL);
    csr_write(pmpcfg0, 0x1f);

    csr_write(menvcfg, -1UL);
#if __riscv_xlen == 32
    csr_write(menvcfgh, -1UL);
#endif
    puts("M: menvcfg keeps ");
    puthex(read_menvcfg(), 16);
    csr_write(senvcfg, -1UL);
    puts(", senvcfg keeps ");
    puthex(csr_read(senvcfg), 16);
    putc('\n');
    csr_write(menvcfg, 0);
#if __riscv_xlen == 32
    csr_write(menvcfgh, 0);
#endif
    csr_write(senvcfg, 0);

    csr_write(mideleg, MIP_STIP);
    csr_set(sie, MIP_STIP);
    set_menvcfg(MENVCFG_STCE);
    csr_clear(mcounteren, COUNTEREN_TM);
    write_stimecmp(read_time() + INTERVAL);
    csr_write(stvec, strap_entry);

    csr_clear(mstatus, MSTATUS_MPP);
    csr_set(mstatus, (uintptr_t)PRV_S << MSTATUS_MPP_SHIFT);
    csr_write(mepc, kernel_main);
    __asm__ volatile("mret");
    return 1;
}
