/*
 * bench_timer: bench_loop's 100 M instruction loop with a periodic timer
 * interrupt at 1 kHz (every 10,000 ticks of the 10 MHz mtime), as a kernel
 * with a scheduler tick would have (benchmarks/bench_vcpu.py).
 */
#include "board.h"
#include "trap.h"

#define ITERATIONS 50000000u                    /* 2 instructions each */
#define TICK (CLINT_TICKS_PER_SEC / 1000)       /* 1 kHz */

static volatile uint64_t next_tick;

uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)mtval;
    (void)frame;
    if (mcause != (CAUSE_INTERRUPT | IRQ_M_TIMER))
        finish(2);
    next_tick += TICK;
    clint_set_mtimecmp(next_tick);
    return mepc;
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    next_tick = clint_mtime() + TICK;
    clint_set_mtimecmp(next_tick);
    csr_set(mie, MIE_MTIE);
    csr_set(mstatus, MSTATUS_MIE);

    uint32_t i = 0;
    while (i < ITERATIONS) {
        __asm__ volatile("" : "+r"(i));
        i++;
    }
    csr_clear(mstatus, MSTATUS_MIE);
    return 0;
}
