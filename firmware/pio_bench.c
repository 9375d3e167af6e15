/*
 * pio_bench: read the first 64 KiB of minivm's PIO disk 256 times (16 MiB)
 * and nothing else: every 4 bytes cross the data port, one trap each.
 * The twin of virtio_bench.c, for timing the two side by side.
 *
 * Exit status: 0 when all went well; 1 for a failed read; 2 when the disk
 * is under 64 KiB.
 */
#include "board.h"
#include "lib.h"
#include "piodisk.h"

#define CHECKED_SECTORS 128                 /* 64 KiB */
#define ROUNDS          256                 /* x 64 KiB = 16 MiB */

static uint32_t sector_buffer[WORDS];

int main(void)
{
    if (disk_command(PIODISK_CMD_IDENTIFY, 0, 1) || read_sector_data(sector_buffer)) {
        puts("IDENTIFY failed\n");
        return 1;
    }
    uint64_t capacity = (uint64_t)sector_buffer[3] << 32 | sector_buffer[2];
    if (capacity < CHECKED_SECTORS) {
        puts("disk too small: need 64 KiB\n");
        return 2;
    }
    for (int round = 0; round < ROUNDS; round++) {
        if (disk_command(PIODISK_CMD_READ, 0, CHECKED_SECTORS)) {
            puts("READ failed\n");
            return 1;
        }
        for (int s = 0; s < CHECKED_SECTORS; s++) {
            if (read_sector_data(sector_buffer)) {
                puts("READ data failed\n");
                return 1;
            }
        }
    }
    puts("pio_bench: read 16 MiB\n");
    return 0;
}
