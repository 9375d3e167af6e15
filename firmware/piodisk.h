/*
 * piodisk.h: the driver for minivm's PIO disk (minivm/devices/piodisk.py;
 * not on QEMU `virt`), shared by pio_disk.c and pio_bench.c.  An ATA-like
 * register file: write the sector, the count and a command, then move
 * each sector through the 32-bit data port, one word (one trap) at a time.
 */
#ifndef PIODISK_H
#define PIODISK_H

#include "board.h"

#define SECTOR          512
#define WORDS           (SECTOR / 4)

static inline uint32_t disk_read(int reg)
{
    return mmio_read32(PIODISK_BASE + reg);
}

static inline void disk_write(int reg, uint32_t value)
{
    mmio_write32(PIODISK_BASE + reg, value);
}

/* Start a command; 0 if the disk accepted it, else its ERROR code. */
static inline uint32_t disk_command(uint32_t command, uint64_t sector, uint32_t count)
{
    disk_write(PIODISK_SECTOR_LO, (uint32_t)sector);
    disk_write(PIODISK_SECTOR_HI, (uint32_t)(sector >> 32));
    disk_write(PIODISK_COUNT, count);
    disk_write(PIODISK_COMMAND, command);
    return (disk_read(PIODISK_STATUS) & PIODISK_STATUS_ERR) ? disk_read(PIODISK_ERROR) : 0;
}

/* Move one sector through the data port, after checking the disk wants it. */
static inline int read_sector_data(uint32_t *words)
{
    if (!(disk_read(PIODISK_STATUS) & PIODISK_STATUS_DRQ))
        return -1;
    for (int i = 0; i < WORDS; i++)
        words[i] = disk_read(PIODISK_DATA);
    return 0;
}

static inline int write_sector_data(const uint32_t *words)
{
    if (!(disk_read(PIODISK_STATUS) & PIODISK_STATUS_DRQ))
        return -1;
    for (int i = 0; i < WORDS; i++)
        disk_write(PIODISK_DATA, words[i]);
    return 0;
}

#endif
