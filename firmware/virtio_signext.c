/*
 * virtio_signext: an RV32 virtio-blk driver with a bug RV32 teaching
 * kernels really have.  It writes each buffer's address into the 64-bit
 * desc.addr as `(uint64_t)pointer`, and GCC sign-extends a pointer widened
 * on RV32: the header at 0x8000_2000 becomes 0xFFFF_FFFF_8000_2000, which
 * is not RAM.  (The fix: `(uint64_t)(uintptr_t)pointer`.)
 *
 * The driver is virtio.c, with vblk_buffer_address() replaced by the bug.
 * It reads sector 0 and prints what came of it.  On QEMU 7.2 the first
 * such buffer goes through QEMU's one bounce buffer and the second fails
 * ("bogus descriptor"): the device stops, the driver times out.  On
 * minivm the device refuses the chain (DEVICE_NEEDS_RESET), the driver
 * times out the same way, and minivm says on stderr which descriptor held
 * which address.
 *
 * Exit status: 0 if the read worked (it should not), 1 otherwise.
 */
#include "board.h"
#include "lib.h"
#include "virtio.h"

static uint8_t sector[SECTOR_SIZE];

uint64_t vblk_buffer_address(const void *buffer)
{
    return (uint64_t)(int64_t)(intptr_t)buffer;     /* what (uint64_t)buffer does on RV32 */
}

int main(void)
{
    struct vblk_info disk;
    if (vblk_find(&disk) || vblk_init(&disk))
        return 1;
    puts("virtio-blk: version ");
    putdec(disk.version);
    puts(", sector buffer at ");
    puthex(vblk_buffer_address(sector), 16);
    putc('\n');
    int status = vblk_read(0, sector, 1);
    if (status == VBLK_DRIVER_ERROR)
        return 1;
    puts("READ: status ");
    putdec((uint64_t)status);
    putc('\n');
    return status != 0;
}
