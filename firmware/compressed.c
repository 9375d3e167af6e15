/*
 * compressed: traps from 2-byte instructions (built with the C extension).
 *
 * mepc must point at the trapping instruction whatever its size, and the
 * handler must step over 2 or 4 bytes accordingly: it reads the low two
 * bits of the instruction (0b11: 4 bytes, anything else: 2).  Checks:
 *   c.ebreak (cause 3, mepc = its address),
 *   the all-zero halfword, defined illegal (cause 2; mtval as QEMU gives it),
 *   an ecall at an address that is 2 mod 4, after a run of compressed
 *   instructions whose result (a0) it also checks,
 *   a timer interrupt ending a loop of one 2-byte jump (`for (;;);` in a
 *   kernel built with the C extension): time must pass in such a loop;
 *   the handler steps over the jump, which leaves the loop.
 * Exit status: the number of checks that failed.
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define XLEN_DIGITS 16

static volatile struct {
    int taken;
    uintptr_t cause, epc, tval, a0;
} last;

static int failures;

/* 2 or 4: the length of the instruction at `pc`. */
static uintptr_t insn_length(uintptr_t pc)
{
    return (*(volatile uint16_t *)pc & 3) == 3 ? 4 : 2;
}

uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    last.taken++;
    last.cause = mcause;
    last.epc = mepc;
    last.tval = mtval;
    last.a0 = frame->x[REG_A0];
    if (mcause & CAUSE_INTERRUPT)
        clint_set_mtimecmp(CLINT_NEVER);
    return mepc + insn_length(mepc);
}

static void putreg(const char *name, uintptr_t value)
{
    puts(name);
    puthex(value, XLEN_DIGITS);
}

static void check(const char *what, uintptr_t cause, uintptr_t epc, uintptr_t tval)
{
    puts(what);
    puts(": mcause=");
    putdec(last.cause);
    putreg(" mepc=", last.epc);
    putreg(" mtval=", last.tval);
    puts(" length ");
    putdec(insn_length(last.epc));
    if (last.taken == 1 && last.cause == cause && last.epc == epc && last.tval == tval) {
        puts(" ok\n");
    } else {
        puts(" FAIL\n");
        failures++;
    }
    last.taken = 0;
}

static uintptr_t do_c_ebreak(void)
{
    uintptr_t at;
    __asm__ volatile("lla %0, 1f\n1: c.ebreak" : "=&r"(at) :: "memory");
    return at;
}

static uintptr_t do_c_illegal(void)
{
    uintptr_t at;
    __asm__ volatile("lla %0, 1f\n1: .half 0x0000" : "=&r"(at) :: "memory");
    return at;
}

/* c.li, c.addi, c.slli, c.mv, c.nop leave a0 = (5 + 3) << 2 = 32 and the
 * ecall 2 mod 4: .balign 4 puts the five 2-byte instructions at 0..8. */
static uintptr_t do_ecall_after_compressed(void)
{
    uintptr_t at;
    __asm__ volatile(".balign 4\n"
                     "c.li   a0, 5\n"
                     "c.addi a0, 3\n"
                     "c.slli a0, 2\n"
                     "c.mv   a1, a0\n"
                     "c.nop\n"
                     "1: ecall\n"
                     "lla %0, 1b"
                     : "=&r"(at) :: "a0", "a1", "memory");
    return at;
}

static uintptr_t do_timer_in_c_j_loop(void)
{
    uintptr_t at;
    clint_set_mtimecmp(clint_mtime() + 1000);
    csr_set(mie, MIE_MTIE);
    /* MIE on right before the loop: the interrupt can only come in it. */
    __asm__ volatile("lla %0, 1f\n"
                     "csrs mstatus, %1\n"
                     "1: c.j 1b"
                     : "=&r"(at) : "r"(MSTATUS_MIE) : "memory");
    csr_clear(mstatus, MSTATUS_MIE);
    return at;
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    puts("compressed: traps from 2-byte instructions\n");

    uintptr_t at = do_c_ebreak();
    check("c.ebreak", CAUSE_BREAKPOINT, at, 0);
    at = do_c_illegal();
    check("illegal 0x0000", CAUSE_ILLEGAL, at, 0);
    at = do_ecall_after_compressed();
    check("ecall after compressed", CAUSE_ECALL_M, at, 0);
    puts("a0 at the ecall = ");
    putdec(last.a0);
    if (last.a0 == 32 && at % 4 == 2) {
        puts(" ok\n");
    } else {
        puts(" FAIL\n");
        failures++;
    }

    at = do_timer_in_c_j_loop();
    check("timer in a c.j loop", CAUSE_INTERRUPT | IRQ_M_TIMER, at, 0);

    puts(failures ? "compressed FAILED\n" : "all traps as expected\n");
    return failures;
}
