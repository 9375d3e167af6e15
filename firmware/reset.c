/*
 * reset: the finisher's third command.  The first boot asks for a machine
 * reset (0x7777); the second boot finds the mark it left in RAM and exits.
 * RAM keeps its contents across a reset; only the image is loaded again.
 * The CLINT's reset (as QEMU 7.2 does it) sets mtime back to 0 and keeps
 * mtimecmp: the first boot arms the timer and sleeps until it is due
 * (200 ms) before the reset, the second reads both back.
 */
#include "board.h"
#include "lib.h"

/* A word of RAM well past the image: neither loaded nor cleared at boot. */
#define BOOT_MARK ((volatile uint32_t *)0x80100000UL)
#define MARK 0x600db007u
#define ARMED (CLINT_TICKS_PER_SEC / 5)         /* mtimecmp before the reset: 200 ms */

int main(void)
{
    if (*BOOT_MARK != MARK) {
        *BOOT_MARK = MARK;
        puts("first boot: asking for a reset\n");
        clint_set_mtimecmp(ARMED);
        csr_set(mie, MIE_MTIE);         /* wakes wfi; mstatus.MIE stays clear */
        while (clint_mtime() < ARMED)
            wfi();
        csr_clear(mie, MIE_MTIE);
        mmio_write32(FINISHER_BASE, FINISHER_RESET);
        puts("still running after the reset request?\n");
        return 1;
    }
    uint64_t mtime = clint_mtime();
    uint64_t mtimecmp = *(volatile uint64_t *)(CLINT_BASE + CLINT_MTIMECMP);
    puts("second boot: the reset worked\n");
    puts(mtime < ARMED ? "mtime restarted from 0\n" : "FAIL: mtime kept running\n");
    puts(mtimecmp == ARMED ? "mtimecmp kept\n" : "FAIL: mtimecmp changed\n");
    return mtime >= ARMED || mtimecmp != ARMED;
}
