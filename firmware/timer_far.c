/*
 * timer_far: timer deadlines too far away to ever come.
 *
 * For each far mtimecmp (from 1.8e17 ticks, about 570 years at 10 MHz, up
 * to all ones less one), arm it with the interrupt enabled and watch mtime
 * for 1 ms: no interrupt may come and mtime must only go up.  Then a near
 * deadline must still interrupt.  Last, arm the farthest deadline again
 * and sleep in wfi: it is past the end of minivm's virtual time, so
 * nothing can wake the hart; QEMU waits forever and minivm ends the run
 * saying so (with any input on stdin, or none).
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define WATCH   (CLINT_TICKS_PER_SEC / 1000)    /* 1 ms */

static volatile int ticks;

uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)mtval;
    (void)frame;
    if (mcause != (CAUSE_INTERRUPT | IRQ_M_TIMER))
        finish(1);
    ticks++;
    csr_clear(mie, MIE_MTIE);
    return mepc;
}

static const uint64_t far[] = {
    180000000000000000ull,      /* 1.8e17 ticks */
    184467440737095516ull,      /* 2^64 / 100 */
    0x8000000000000000ull,
    0xffffffff00000000ull,      /* an RV32 kernel's first half over the old all ones */
    UINT64_MAX - 1,
};

/* Watch mtime for WATCH ticks; 1 if it only went up and no interrupt came. */
static int quiet_and_monotonic(void)
{
    uint64_t start = clint_mtime(), last = start, now;
    while ((now = clint_mtime()) < start + WATCH) {
        if (now < last)
            return 0;
        last = now;
    }
    return ticks == 0;
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    csr_set(mstatus, MSTATUS_MIE);
    int failures = 0;
    for (unsigned i = 0; i < sizeof far / sizeof far[0]; i++) {
        clint_set_mtimecmp(far[i]);
        csr_set(mie, MIE_MTIE);
        int ok = quiet_and_monotonic();
        puts("mtimecmp ");
        puthex(far[i], 16);
        puts(ok ? ": never due\n" : ": FAIL\n");
        failures += !ok;
    }
    clint_set_mtimecmp(clint_mtime() + WATCH);
    while (ticks == 0)
        wfi();
    puts("near deadline: interrupt\n");

    clint_set_mtimecmp(far[sizeof far / sizeof far[0] - 1]);
    csr_set(mie, MIE_MTIE);
    puts(failures ? "FAIL\n" : "sleeping until a far deadline\n");
    for (;;)
        wfi();
}
