/*
 * clint_halves: the timer as RV32 teaching kernels program it, one 32-bit
 * half of mtimecmp at a time.
 *
 * 1. mtimecmp's power-on value.  QEMU 7.2 resets it to 0, so the timer
 *    interrupt is pending from the start (mtime >= 0): enabling it before
 *    arming the timer takes one at once.
 * 2. Three ticks armed by writing only the low half (the high half is
 *    still 0 from reset), as a kernel does that never looks past 2^32 ticks.
 * 3. Three ticks armed low half first, then high half, starting from a
 *    disarmed timer (all ones): what a 64-bit store compiles to on RV32.
 *    Between the two stores mtimecmp is 0xffffffff_xxxxxxxx, a deadline
 *    thousands of years away, which must simply never come.
 * The handler takes each timer interrupt once and clears mie.MTIE.
 * Exit status: 0 when every tick came.
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define TICK    (CLINT_TICKS_PER_SEC / 1000)    /* 1 ms */
#define MTIMECMP_LO (CLINT_BASE + CLINT_MTIMECMP)
#define MTIMECMP_HI (CLINT_BASE + CLINT_MTIMECMP + 4)

static volatile int ticks;

uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)mtval;
    (void)frame;
    if (mcause != (CAUSE_INTERRUPT | IRQ_M_TIMER)) {
        puts("FAIL: unexpected trap, mcause=");
        puthex(mcause, 8);
        putc('\n');
        finish(1);
    }
    ticks++;
    csr_clear(mie, MIE_MTIE);       /* one interrupt per arming */
    return mepc;
}

/* Enable the timer interrupt and sleep until tick number `n` came. */
static void wait_for_tick(int n)
{
    csr_set(mie, MIE_MTIE);
    while (ticks < n)
        wfi();
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    puts("mtimecmp at power-on: ");
    puthex(mmio_read32(MTIMECMP_HI), 8);
    putc(' ');
    puthex(mmio_read32(MTIMECMP_LO), 8);
    putc('\n');

    /* 1: nothing armed yet; is the interrupt pending anyway? */
    csr_set(mstatus, MSTATUS_MIE);
    csr_set(mie, MIE_MTIE);
    uint64_t give_up = clint_mtime() + TICK;
    while (ticks == 0 && clint_mtime() < give_up)
        ;
    csr_clear(mie, MIE_MTIE);
    puts(ticks ? "power-on: timer interrupt taken at once\n"
               : "power-on: no timer interrupt\n");
    int expected = ticks;

    /* 2: the low half only. */
    for (int n = 1; n <= 3; n++) {
        mmio_write32(MTIMECMP_LO, (uint32_t)clint_mtime() + TICK);
        wait_for_tick(++expected);
        puts("low half only: tick ");
        putdec(n);
        putc('\n');
    }

    /* 3: disarm (all ones), then low half first, then high half. */
    mmio_write32(MTIMECMP_HI, UINT32_MAX);
    mmio_write32(MTIMECMP_LO, UINT32_MAX);
    for (int n = 1; n <= 3; n++) {
        uint64_t when = clint_mtime() + TICK;
        mmio_write32(MTIMECMP_LO, (uint32_t)when);
        mmio_write32(MTIMECMP_HI, (uint32_t)(when >> 32));
        wait_for_tick(++expected);
        puts("low then high: tick ");
        putdec(n);
        putc('\n');
    }
    csr_clear(mstatus, MSTATUS_MIE);
    return 0;
}
