/*
 * pio_disk: a driver and demo for minivm's PIO disk (minivm only: QEMU
 * `virt` has no such device).  Every word of data crosses the data port,
 * one trap each: run it with --stats to see what that costs.
 *
 *   1. IDENTIFY: print the model, the capacity and whether it is read-only.
 *   2. READ the first 64 KiB (sectors 0-127) and print their FNV-1a checksum.
 *   3. WRITE a known pattern to the last sector, FLUSH, READ it back, compare.
 *
 * Exit status: 0 when all went well; 3 when the disk refused the write
 * (read-only); 1 for any other failure; 2 when the disk is under 64 KiB.
 */
#include "board.h"
#include "lib.h"
#include "piodisk.h"

#define CHECKED_SECTORS 128                 /* 64 KiB */

static uint32_t sector_buffer[WORDS];

static void fail(const char *what, uint32_t error)
{
    puts(what);
    puts(" failed: error ");
    putdec(error);
    putc('\n');
}

int main(void)
{
    puts("pio_disk: IDENTIFY\n");
    if (disk_command(PIODISK_CMD_IDENTIFY, 0, 1) || read_sector_data(sector_buffer)) {
        puts("IDENTIFY failed\n");
        return 1;
    }
    const char *identify = (const char *)sector_buffer;
    uint64_t capacity = (uint64_t)sector_buffer[3] << 32 | sector_buffer[2];
    int read_only = sector_buffer[5] & 1;
    puts("model: ");
    puts(identify + 32);
    puts("\ncapacity: ");
    putdec(capacity);
    puts(" sectors");
    puts(read_only ? ", read-only\n" : "\n");
    if (capacity < CHECKED_SECTORS) {
        puts("disk too small: need 64 KiB\n");
        return 2;
    }

    uint32_t error = disk_command(PIODISK_CMD_READ, 0, CHECKED_SECTORS);
    if (error) {
        fail("READ", error);
        return 1;
    }
    uint32_t hash = 2166136261u;
    for (int s = 0; s < CHECKED_SECTORS; s++) {
        if (read_sector_data(sector_buffer)) {
            fail("READ data", disk_read(PIODISK_ERROR));
            return 1;
        }
        hash = fnv1a(hash, (const uint8_t *)sector_buffer, SECTOR);
    }
    puts("fnv1a of sectors 0-127: ");
    puthex(hash, 8);
    putc('\n');

    uint64_t last = capacity - 1;
    for (int i = 0; i < WORDS; i++)
        sector_buffer[i] = 0xd15c0000u | (uint32_t)i;
    error = disk_command(PIODISK_CMD_WRITE, last, 1);
    if (error) {
        fail("WRITE", error);
        return error == PIODISK_ERROR_READ_ONLY ? 3 : 1;
    }
    if (write_sector_data(sector_buffer) || disk_command(PIODISK_CMD_FLUSH, 0, 0)) {
        fail("WRITE data", disk_read(PIODISK_ERROR));
        return 1;
    }
    for (int i = 0; i < WORDS; i++)
        sector_buffer[i] = 0;
    if (disk_command(PIODISK_CMD_READ, last, 1) || read_sector_data(sector_buffer)) {
        fail("READ back", disk_read(PIODISK_ERROR));
        return 1;
    }
    for (int i = 0; i < WORDS; i++) {
        if (sector_buffer[i] != (0xd15c0000u | (uint32_t)i)) {
            puts("read back: FAIL\n");
            return 1;
        }
    }
    puts("wrote, flushed and read back the last sector: ok\n");
    return 0;
}
