/*
 * hang: a guest that can never wake up.  It masks every interrupt (mie = 0,
 * mstatus.MIE = 0) and waits for one in wfi.  Real hardware would sleep
 * forever; minivm sees that nothing can ever wake the hart and ends the run
 * with a message (QEMU just waits).
 */
#include "board.h"
#include "lib.h"

int main(void)
{
    puts("waiting for an interrupt that can never come\n");
    csr_write(mie, 0);
    csr_clear(mstatus, MSTATUS_MIE);
    for (;;)
        wfi();
}
