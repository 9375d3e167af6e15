/*
 * reset: the finisher's third command.  The first boot asks for a machine
 * reset (0x7777); the second boot finds the mark it left in RAM and exits.
 * RAM keeps its contents across a reset; only the image is loaded again.
 */
#include "board.h"
#include "lib.h"

/* A word of RAM well past the image: neither loaded nor cleared at boot. */
#define BOOT_MARK ((volatile uint32_t *)0x80100000UL)
#define MARK 0x600db007u

int main(void)
{
    if (*BOOT_MARK != MARK) {
        *BOOT_MARK = MARK;
        puts("first boot: asking for a reset\n");
        mmio_write32(FINISHER_BASE, FINISHER_RESET);
        puts("still running after the reset request?\n");
        return 1;
    }
    puts("second boot: the reset worked\n");
    return 0;
}
