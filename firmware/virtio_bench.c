/*
 * virtio_bench: read the first 64 KiB of the virtio block device 256 times
 * (16 MiB) and nothing else, each 64 KiB as one batch of 16 requests of
 * 4 KiB with one notify.  The twin of pio_bench.c, for timing the two
 * side by side.  The driver is virtio.c.
 *
 * Exit status: 0 when all went well; 1 for any failure; 2 when the disk
 * is under 64 KiB.
 */
#include "board.h"
#include "lib.h"
#include "virtio.h"

#define CHECKED_SECTORS 128                 /* 64 KiB: one batch */
#define ROUNDS          256                 /* x 64 KiB = 16 MiB */

static uint8_t buffer[CHECKED_SECTORS * SECTOR_SIZE] __attribute__((aligned(4096)));

int main(void)
{
    struct vblk_info disk;
    if (vblk_find(&disk) || vblk_init(&disk))
        return 1;
    if (disk.capacity < CHECKED_SECTORS) {
        puts("disk too small: need 64 KiB\n");
        return 2;
    }
    for (int round = 0; round < ROUNDS; round++) {
        int status = vblk_read(0, buffer, CHECKED_SECTORS);
        if (status == VBLK_DRIVER_ERROR)
            return 1;                       /* the driver said why */
        if (status) {
            puts("READ failed: status ");
            putdec((uint64_t)status);
            putc('\n');
            return 1;
        }
    }
    puts("virtio_bench: read 16 MiB\n");
    return 0;
}
