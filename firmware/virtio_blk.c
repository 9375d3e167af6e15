/*
 * virtio_blk: the virtio block device demo, pio_disk.c's twin on the
 * paravirtualized device (QEMU `virt` has it too, so it runs on both).
 * The driver is virtio.c; this file is what pio_disk.c's main is.
 *
 *   1. Find the device, bring it up, print the transport version, the
 *      capacity and whether it is read-only.
 *   2. READ the first 64 KiB (sectors 0-127) as one batch of 16 requests
 *      of 4 KiB, one notify, and print their FNV-1a checksum: the same
 *      line pio_disk prints for the same image.
 *   3. WRITE pio_disk's pattern to the last sector, FLUSH, READ it back,
 *      compare.
 *
 * Exit status: 0 when all went well; 3 when the disk refused the write
 * (read-only); 1 for any other failure; 2 when the disk is under 64 KiB.
 */
#include "board.h"
#include "lib.h"
#include "virtio.h"

#define CHECKED_SECTORS 128                 /* 64 KiB */
#define WORDS           (SECTOR_SIZE / 4)

static uint8_t checked[CHECKED_SECTORS * SECTOR_SIZE] __attribute__((aligned(4096)));
static uint32_t sector_buffer[WORDS];

/* Say which request failed; VBLK_DRIVER_ERROR was explained by the driver. */
static int failed(const char *what, int status)
{
    if (status != VBLK_DRIVER_ERROR) {
        puts(what);
        puts(" failed: status ");
        putdec((uint64_t)status);
        putc('\n');
    }
    return 1;
}

int main(void)
{
    struct vblk_info disk;
    if (vblk_find(&disk))
        return 1;
    puts("virtio-blk: version ");
    putdec(disk.version);
    putc('\n');
    if (vblk_init(&disk))
        return 1;
    puts("capacity: ");
    putdec(disk.capacity);
    puts(" sectors");
    puts(disk.read_only ? ", read-only\n" : "\n");
    if (disk.capacity < CHECKED_SECTORS) {
        puts("disk too small: need 64 KiB\n");
        return 2;
    }

    int status = vblk_read(0, checked, CHECKED_SECTORS);
    if (status)
        return failed("READ", status);
    puts("fnv1a of sectors 0-127: ");
    puthex(fnv1a(2166136261u, checked, sizeof checked), 8);
    putc('\n');

    /* A read-only device must fail the write with VIRTIO_BLK_S_IOERR and
     * change nothing ("Block Device", "Device Operation"): send it anyway
     * and show what the device says, as pio_disk does. */
    uint64_t last = disk.capacity - 1;
    for (int i = 0; i < WORDS; i++)
        sector_buffer[i] = 0xd15c0000u | (uint32_t)i;
    status = vblk_write(last, sector_buffer, 1);
    if (status == VBLK_DRIVER_ERROR)
        return 1;
    if (status || disk.read_only) {
        puts("WRITE failed: status ");
        putdec((uint64_t)status);
        putc('\n');
        return 3;
    }
    /* A device without VIRTIO_BLK_F_FLUSH takes no flush request (and
     * should make each write stable before completing it). */
    if (disk.can_flush && (status = vblk_flush()))
        return failed("FLUSH", status);
    for (int i = 0; i < WORDS; i++)
        sector_buffer[i] = 0;
    if ((status = vblk_read(last, sector_buffer, 1)))
        return failed("READ back", status);
    for (int i = 0; i < WORDS; i++) {
        if (sector_buffer[i] != (0xd15c0000u | (uint32_t)i)) {
            puts("read back: FAIL\n");
            return 1;
        }
    }
    puts("wrote, flushed and read back the last sector: ok\n");
    return 0;
}
