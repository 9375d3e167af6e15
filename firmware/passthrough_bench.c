/*
 * passthrough_bench: read the first 64 KiB of a passthrough window 256
 * times (16 MiB), the twin of pio_bench.c and virtio_bench.c.  The data is
 * copied out with plain loads, as the other two copy it into a buffer.
 *
 *     minivm run passthrough_bench --passthrough FILE@0x40000000
 */
#include "board.h"
#include "lib.h"

#define WINDOW  0x40000000UL
#define BYTES   (64 * 1024)
#define ROUNDS  256                         /* x 64 KiB = 16 MiB */

static uint64_t buffer[BYTES / 8];

int main(void)
{
    const volatile uint64_t *window = (const volatile uint64_t *)WINDOW;
    for (int round = 0; round < ROUNDS; round++)
        for (unsigned i = 0; i < BYTES / 8; i++)
            buffer[i] = window[i];
    puts("passthrough_bench: read 16 MiB\n");
    return 0;
}
