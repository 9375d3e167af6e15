/*
 * passthrough: a host file mapped straight into guest memory, minivm only:
 *
 *     minivm run passthrough --passthrough FILE@0x40000000
 *
 * The guest reaches the file with ordinary loads and stores: no device
 * registers, no VM exits.  Mirrors pio_disk and virtio_blk on the same
 * bytes: checksum the first 64 KiB, write the pattern into the last 512
 * bytes of those 64 KiB, read it back.  Mapped ,ro the store faults (store
 * access fault, mcause 7) into the trap handler, which says so and exits 3.
 * Exit status: 0 when all went well, 1 if the read-back differs.
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define WINDOW          0x40000000UL
#define CHECKED_BYTES   (64 * 1024)
#define PATTERN_WORDS   128                     /* one 512-byte sector's worth */

/* Only a store to a read-only window should ever get here. */
uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)mepc;
    (void)frame;
    puts(mcause == CAUSE_STORE_ACCESS ? "WRITE failed: store access fault at "
                                      : "unexpected trap at ");
    puthex(mtval, 8);
    putc('\n');
    finish(mcause == CAUSE_STORE_ACCESS ? 3 : 1);
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    puts("passthrough: window at ");
    puthex(WINDOW, 8);
    /* Plain loads from the window: the same FNV-1a line as the disk demos. */
    puts("\nfnv1a of sectors 0-127: ");
    puthex(fnv1a(2166136261u, (const uint8_t *)WINDOW, CHECKED_BYTES), 8);
    putc('\n');

    volatile uint32_t *last = (volatile uint32_t *)(WINDOW + CHECKED_BYTES - 512);
    for (uint32_t i = 0; i < PATTERN_WORDS; i++)
        last[i] = 0xd15c0000u | i;
    for (uint32_t i = 0; i < PATTERN_WORDS; i++) {
        if (last[i] != (0xd15c0000u | i)) {
            puts("read back: FAIL\n");
            return 1;
        }
    }
    puts("wrote and read back the last sector of the first 64 KiB: ok\n");
    return 0;
}
