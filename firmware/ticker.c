/*
 * ticker: a timer-driven guest, for benchmarks/bench_timer_rate.py.  It
 * prints a line every 100 ms of guest time for 2 s, waiting in the three
 * ways teaching kernels wait:
 *
 *   spin  the timer interrupt prints; the main loop spins meanwhile, as a
 *         kernel's idle loop or a task's delay loop does     (lines 1-10)
 *   poll  no interrupt: the loop reads mtime until the next 100 ms
 *         (a busy-wait sleep)                                (lines 11-15)
 *   wfi   the timer interrupt prints; the hart sleeps in wfi (lines 16-20)
 *
 * On QEMU each line comes 100 ms after the one before; on minivm, as fast
 * as its virtual clock lets it (the benchmark prints both).
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define PERIOD  (CLINT_TICKS_PER_SEC / 10)      /* 100 ms */
#define SPIN_LINES 10
#define POLL_LINES 5
#define WFI_LINES 5

static volatile int line;
static uint64_t next;

static void print_line(const char *how)
{
    line++;
    puts("line ");
    putdec((uint64_t)line);
    puts(" (");
    puts(how);
    puts(")\n");
}

uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)mtval;
    (void)frame;
    if (mcause != (CAUSE_INTERRUPT | IRQ_M_TIMER))
        finish(1);
    print_line(line < SPIN_LINES ? "spin" : "wfi");
    next += PERIOD;
    clint_set_mtimecmp(next);
    return mepc;
}

/* Let the timer interrupt print until `last` lines are out. */
static void timer_lines(int last, int sleep)
{
    next = clint_mtime() + PERIOD;
    clint_set_mtimecmp(next);
    csr_set(mie, MIE_MTIE);
    csr_set(mstatus, MSTATUS_MIE);
    while (line < last) {
        if (sleep)
            wfi();
    }
    csr_clear(mstatus, MSTATUS_MIE);
    csr_clear(mie, MIE_MTIE);
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    timer_lines(SPIN_LINES, 0);
    next = clint_mtime();
    while (line < SPIN_LINES + POLL_LINES) {
        next += PERIOD;
        while (clint_mtime() < next)
            ;
        print_line("poll");
    }
    timer_lines(SPIN_LINES + POLL_LINES + WFI_LINES, 1);
    return 0;
}
