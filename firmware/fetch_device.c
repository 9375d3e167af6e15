/*
 * fetch_device: a jump into a device region.  Devices hold registers, not
 * code: fetching an instruction there is an instruction access fault
 * (mcause 1, mepc = mtval = the address), as at an address where nothing
 * is mapped.  Checked for the CLINT and the PLIC, where QEMU 7.2 agrees.
 * (QEMU runs the bytes of some other devices' registers as instructions:
 * the UART's read as 0, an illegal instruction; minivm faults there too.)
 * Exit status: the number of checks that failed.
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

static volatile uintptr_t cause, epc, tval;

uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    cause = mcause;
    epc = mepc;
    tval = mtval;
    return frame->x[REG_RA];    /* the jump was a call: return to its caller */
}

static int jump_into(const char *name, uintptr_t target)
{
    cause = epc = tval = 0;
    ((void (*)(void))target)();
    puts(name);
    puts(": mcause=");
    putdec(cause);
    puts(" mepc=");
    puthex(epc, 8);
    puts(" mtval=");
    puthex(tval, 8);
    if (cause == CAUSE_FETCH_ACCESS && epc == target && tval == target) {
        puts(" ok\n");
        return 0;
    }
    puts(" WRONG\n");
    return 1;
}

int main(void)
{
    int failures = 0;

    csr_write(mtvec, trap_entry);
    failures += jump_into("clint", CLINT_BASE);
    failures += jump_into("plic", PLIC_BASE);
    failures += jump_into("plic claim", PLIC_CLAIM(PLIC_CTX_M));
    return failures;
}
