/*
 * sleep: wfi as a sleep, with interrupts globally masked.
 *
 * Three times: arm the timer 10 ms ahead (mtimecmp = mtime + 100000),
 * enable the timer interrupt in mie (MTIE) but leave mstatus.MIE clear.
 * The spec says wfi still wakes when an interrupt is pending and enabled
 * in mie, even though none is taken, so sleep in wfi until mtime reaches
 * the target; then disarm the timer (mtimecmp = all ones), which must
 * clear mip.MTIP, and clear MTIE.  Taking any trap at all is a failure.
 * Last, the time CSR (rdtime) must read the same clock as mtime.
 * Exit status: 0 when every sleep ended as it should.
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define SLEEP_TICKS     (CLINT_TICKS_PER_SEC / 100)     /* 10 ms */

/* With MIE clear no interrupt should ever get here. */
uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)mtval;
    (void)frame;
    puts("FAIL: unexpected trap, mcause=");
    puthex(mcause, 2 * sizeof(uintptr_t));
    puts(" mepc=");
    puthex(mepc, 2 * sizeof(uintptr_t));
    putc('\n');
    finish(1);
}

/* Sleep SLEEP_TICKS; returns 1 when all went as expected. */
static int sleep_once(void)
{
    uint64_t target = clint_mtime() + SLEEP_TICKS;
    clint_set_mtimecmp(target);
    csr_set(mie, MIE_MTIE);
    while (clint_mtime() < target)
        wfi();
    clint_set_mtimecmp(CLINT_NEVER);
    csr_clear(mie, MIE_MTIE);
    return !(csr_read(mip) & MIP_MTIP);
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    csr_clear(mstatus, MSTATUS_MIE);
    puts("sleep: wfi with mstatus.MIE = 0\n");

    int failures = 0;
    for (int n = 1; n <= 3; n++) {
        int ok = sleep_once();
        puts("slept ");
        putdec(n);
        puts(ok ? " ok\n" : " FAIL: MTIP still pending after disarming\n");
        failures += !ok;
    }

    /* rdtime reads mtime through the time CSR (minivm traps and emulates it). */
    uint64_t before = clint_mtime();
    uint64_t now = read_time();
    uint64_t after = clint_mtime();
    int ok = before <= now && now <= after;
    puts(ok ? "rdtime ok\n" : "rdtime FAIL: not between two mtime reads\n");
    failures += !ok;
    return failures;
}
