/*
 * bench_irq: interrupt round trips, back to back.  The handler re-arms the
 * timer for "now" (mtimecmp = 0 is always due), so each mret is followed at
 * once by the next timer interrupt: 20,000 times timer IRQ -> handler ->
 * mret (benchmarks/bench_vcpu.py).
 */
#include "board.h"
#include "trap.h"

#define ROUND_TRIPS 20000u

static volatile uint32_t taken;

uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)mtval;
    (void)frame;
    if (mcause != (CAUSE_INTERRUPT | IRQ_M_TIMER))
        finish(2);
    if (++taken == ROUND_TRIPS)
        clint_set_mtimecmp(CLINT_NEVER);
    return mepc;
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    clint_set_mtimecmp(0);
    csr_set(mie, MIE_MTIE);
    csr_set(mstatus, MSTATUS_MIE);
    while (taken < ROUND_TRIPS)
        wfi();
    return 0;
}
