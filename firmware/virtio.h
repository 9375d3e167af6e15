/*
 * virtio.h: a small polling driver for one virtio block device on the
 * virtio-mmio transport, modern (version 2) or legacy (version 1).  Used
 * by virtio_blk.c (the demo) and virtio_bench.c; the driver is virtio.c.
 *
 * Requests go to the device in batches: up to VBLK_BATCH requests of up
 * to VBLK_REQUEST_SECTORS sectors each are put in the virtqueue, the
 * device is notified once, and the driver polls until all are done.
 */
#ifndef VIRTIO_H
#define VIRTIO_H

#include <stdint.h>

#define SECTOR_SIZE             512             /* virtio-blk's unit, whatever the disk's */
#define VBLK_REQUEST_SECTORS    8               /* 4 KiB per request */
#define VBLK_BATCH              16              /* requests per notify */

/* Request types and status bytes ("Block Device", "Device Operation"). */
#define VIRTIO_BLK_T_IN         0               /* read sectors */
#define VIRTIO_BLK_T_OUT        1               /* write sectors */
#define VIRTIO_BLK_T_FLUSH      4               /* make completed writes stable */
#define VIRTIO_BLK_S_OK         0
#define VIRTIO_BLK_S_IOERR      1
#define VIRTIO_BLK_S_UNSUPP     2

/* What the vblk_* calls below return when the driver, not a request,
 * failed (no answer, a broken used ring...); it prints why first. */
#define VBLK_DRIVER_ERROR       (-1)

struct vblk_info {
    uint32_t version;           /* the transport: 2 modern, 1 legacy */
    uint64_t capacity;          /* in 512-byte sectors */
    int read_only;              /* the device offered VIRTIO_BLK_F_RO */
    int can_flush;              /* VIRTIO_BLK_F_FLUSH was negotiated */
};

/* Find the first block device in the virtio-mmio slots (sets version).
 * 0 on success, else VBLK_DRIVER_ERROR. */
int vblk_find(struct vblk_info *info);

/* Then bring it up (sets the rest of info).  0 on success, else
 * VBLK_DRIVER_ERROR, and the device is left FAILED. */
int vblk_init(struct vblk_info *info);

/* Read or write count sectors from sector on.  0 when every request
 * completed with VIRTIO_BLK_S_OK; else the first other status byte, or
 * VBLK_DRIVER_ERROR. */
int vblk_read(uint64_t sector, void *buffer, uint32_t count);
int vblk_write(uint64_t sector, const void *buffer, uint32_t count);

/* Make the writes completed so far stable (needs can_flush). */
int vblk_flush(void);

/* The address the driver puts in a descriptor for `buffer`: the pointer
 * itself (M-mode, no paging: a pointer is a physical address).  Weak, so
 * virtio_signext.c can show what a buggy RV32 driver writes instead. */
uint64_t vblk_buffer_address(const void *buffer);

#endif
