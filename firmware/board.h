/*
 * board.h: the machine as firmware sees it.
 *
 * Addresses follow QEMU's `virt` board, so every image in this folder runs
 * unchanged on `qemu-system-riscv64 -M virt -bios none -kernel X.elf` and on
 * minivm.  minivm's memory map lives in minivm/machine.py; keep the two equal.
 */
#ifndef BOARD_H
#define BOARD_H

#include <stdint.h>

/* sifive_test "finisher": one write ends the simulation. */
#define FINISHER_BASE   0x00100000UL
#define FINISHER_PASS   0x5555u             /* exit status 0 */
#define FINISHER_FAIL   0x3333u             /* (code << 16) | FAIL: exit status code */
#define FINISHER_RESET  0x7777u             /* restart the machine */

/* 16550A UART0; each register is one byte wide, one byte apart. */
#define UART0_BASE      0x10000000UL
#define UART_RBR        0   /* receive buffer (read, DLAB=0) */
#define UART_THR        0   /* transmit holding (write, DLAB=0) */
#define UART_DLL        0   /* divisor latch low (DLAB=1) */
#define UART_IER        1   /* interrupt enable (DLAB=0) */
#define UART_DLM        1   /* divisor latch high (DLAB=1) */
#define UART_IIR        2   /* interrupt identification (read) */
#define UART_FCR        2   /* FIFO control (write) */
#define UART_LCR        3   /* line control; bit 7 is DLAB */
#define UART_MCR        4   /* modem control */
#define UART_LSR        5   /* line status */
#define UART_MSR        6   /* modem status */
#define UART_SCR        7   /* scratch */

#define UART_LCR_DLAB   0x80
#define UART_LCR_8N1    0x03
#define UART_FCR_ENABLE 0x01
#define UART_LSR_DR     0x01    /* a byte is waiting in RBR */
#define UART_LSR_THRE   0x20    /* THR can take a byte */

static inline void mmio_write8(uintptr_t addr, uint8_t value)
{
    *(volatile uint8_t *)addr = value;
}

static inline uint8_t mmio_read8(uintptr_t addr)
{
    return *(volatile uint8_t *)addr;
}

static inline void mmio_write32(uintptr_t addr, uint32_t value)
{
    *(volatile uint32_t *)addr = value;
}

static inline uint8_t uart_read(int reg)
{
    return mmio_read8(UART0_BASE + reg);
}

static inline void uart_write(int reg, uint8_t value)
{
    mmio_write8(UART0_BASE + reg, value);
}

/* Finish the run: status 0 is PASS, anything else FAIL with that code. */
static inline void __attribute__((noreturn)) finish(uint32_t status)
{
    if (status == 0)
        mmio_write32(FINISHER_BASE, FINISHER_PASS);
    else
        mmio_write32(FINISHER_BASE, (status << 16) | FINISHER_FAIL);
    for (;;)
        ;
}

/* The CLINT and PLIC registers below are 32 bits wide (mtime, mtimecmp: 64). */
static inline uint32_t mmio_read32(uintptr_t addr)
{
    return *(volatile uint32_t *)addr;
}

/*
 * CLINT: software and timer interrupts of hart 0.  mtime counts up at
 * 10 MHz on QEMU `virt`; machine timer interrupt pending (mip.MTIP) is
 * mtime >= mtimecmp.  Both registers are 64 bits wide.
 */
#define CLINT_BASE      0x02000000UL
#define CLINT_MSIP      0x0000  /* bit 0: machine software interrupt pending */
#define CLINT_MTIMECMP  0x4000  /* hart 0's compare register */
#define CLINT_MTIME     0xbff8  /* the timer itself */
#define CLINT_TICKS_PER_SEC 10000000u

static inline uint64_t clint_mtime(void)
{
#if __riscv_xlen == 64
    return *(volatile uint64_t *)(CLINT_BASE + CLINT_MTIME);
#else
    /* Two 32-bit halves: read high, low, high again until the high half
     * did not change in between (the low half wrapped). */
    uint32_t hi, lo;
    do {
        hi = mmio_read32(CLINT_BASE + CLINT_MTIME + 4);
        lo = mmio_read32(CLINT_BASE + CLINT_MTIME);
    } while (hi != mmio_read32(CLINT_BASE + CLINT_MTIME + 4));
    return ((uint64_t)hi << 32) | lo;
#endif
}

/* Arm the timer; clint_set_mtimecmp(CLINT_NEVER) disarms it (clears MTIP). */
#define CLINT_NEVER     UINT64_MAX

static inline void clint_set_mtimecmp(uint64_t when)
{
#if __riscv_xlen == 64
    *(volatile uint64_t *)(CLINT_BASE + CLINT_MTIMECMP) = when;
#else
    /* The privileged spec's sequence: the low half goes to all ones first,
     * so no mix of old and new halves is ever smaller than either value. */
    mmio_write32(CLINT_BASE + CLINT_MTIMECMP, UINT32_MAX);
    mmio_write32(CLINT_BASE + CLINT_MTIMECMP + 4, (uint32_t)(when >> 32));
    mmio_write32(CLINT_BASE + CLINT_MTIMECMP, (uint32_t)when);
#endif
}

/*
 * PLIC: routes device interrupt lines (UART0 is line 10) to harts.  Each
 * hart privilege level is a "context" with its own enable bits, priority
 * threshold and claim/complete register.  A line interrupts a context when
 * it is pending, enabled there, and its priority is above the threshold.
 */
#define PLIC_BASE       0x0c000000UL
#define PLIC_PRIORITY(irq)      (PLIC_BASE + 4 * (irq))         /* 0 = never */
#define PLIC_PENDING            (PLIC_BASE + 0x1000)            /* one bit per line */
#define PLIC_ENABLE(ctx)        (PLIC_BASE + 0x2000 + 0x80 * (ctx))
#define PLIC_THRESHOLD(ctx)     (PLIC_BASE + 0x200000 + 0x1000 * (ctx))
#define PLIC_CLAIM(ctx)         (PLIC_BASE + 0x200004 + 0x1000 * (ctx)) /* read: claim, write: complete */
#define PLIC_CTX_M      0       /* hart 0, M-mode */
#define PLIC_CTX_S      1       /* hart 0, S-mode */
#define UART0_IRQ       10

/*
 * Control and status registers.  csr_read(mstatus), csr_write(mtvec, x),
 * csr_set(mie, bits), csr_clear(mie, bits): the CSR is named, not numbered.
 */
#define csr_read(csr) ({                                        \
    uintptr_t value_;                                           \
    __asm__ volatile("csrr %0, " #csr : "=r"(value_));          \
    value_; })
#define csr_write(csr, value)                                   \
    __asm__ volatile("csrw " #csr ", %0" :: "rK"((uintptr_t)(value)) : "memory")
#define csr_set(csr, bits)                                      \
    __asm__ volatile("csrs " #csr ", %0" :: "rK"((uintptr_t)(bits)) : "memory")
#define csr_clear(csr, bits)                                    \
    __asm__ volatile("csrc " #csr ", %0" :: "rK"((uintptr_t)(bits)) : "memory")

/* The time CSR: mtime as the hart sees it (rdtime; rdtimeh too on RV32). */
static inline uint64_t read_time(void)
{
#if __riscv_xlen == 64
    return csr_read(time);
#else
    uint32_t high, low;
    do {
        high = csr_read(timeh);
        low = csr_read(time);
    } while (high != csr_read(timeh));
    return (uint64_t)high << 32 | low;
#endif
}

static inline void wfi(void)
{
    __asm__ volatile("wfi" ::: "memory");
}

/* Privilege levels, as in mstatus.MPP. */
#define PRV_U           0
#define PRV_S           1
#define PRV_M           3

/* mstatus and sstatus bits */
#define MSTATUS_SIE     (1UL << 1)      /* S-mode interrupts enabled */
#define MSTATUS_MIE     (1UL << 3)      /* M-mode interrupts enabled */
#define MSTATUS_SPIE    (1UL << 5)      /* SIE before the last trap into S */
#define MSTATUS_MPIE    (1UL << 7)      /* MIE before the last trap into M */
#define MSTATUS_SPP     (1UL << 8)      /* privilege before the last trap into S */
#define MSTATUS_MPP     (3UL << 11)     /* privilege before the last trap into M */
#define MSTATUS_MPP_SHIFT 11

/* mie and mip bits: interrupt numbers as in mcause */
#define IRQ_M_SOFT      3
#define IRQ_M_TIMER     7
#define IRQ_M_EXT       11
#define MIE_MTIE        (1UL << IRQ_M_TIMER)
#define MIE_MEIE        (1UL << IRQ_M_EXT)
#define MIP_MTIP        (1UL << IRQ_M_TIMER)

/* mcause: the top bit says interrupt, the rest is the number. */
#define CAUSE_INTERRUPT         (1UL << (__riscv_xlen - 1))
#define CAUSE_FETCH_ACCESS      1
#define CAUSE_ILLEGAL           2
#define CAUSE_BREAKPOINT        3
#define CAUSE_LOAD_MISALIGNED   4       /* QEMU 7.2: misaligned AMOs too */
#define CAUSE_LOAD_ACCESS       5
#define CAUSE_STORE_MISALIGNED  6       /* also AMOs */
#define CAUSE_STORE_ACCESS      7       /* also AMOs */
#define CAUSE_ECALL_U           8
#define CAUSE_ECALL_S           9
#define CAUSE_ECALL_M           11
#define CAUSE_FETCH_PAGE        12
#define CAUSE_LOAD_PAGE         13
#define CAUSE_STORE_PAGE        15

/* minivm's PIO disk (minivm/devices/piodisk.py): not on QEMU `virt`. */
#define PIODISK_BASE        0x10200000UL
#define PIODISK_SECTOR_LO   0x00
#define PIODISK_SECTOR_HI   0x04
#define PIODISK_COUNT       0x08
#define PIODISK_COMMAND     0x0C
#define PIODISK_STATUS      0x10
#define PIODISK_ERROR       0x14
#define PIODISK_DATA        0x18
#define PIODISK_IRQ_ENABLE  0x1C
#define PIODISK_CAPACITY_LO 0x20
#define PIODISK_CAPACITY_HI 0x24

#define PIODISK_CMD_READ     1
#define PIODISK_CMD_WRITE    2
#define PIODISK_CMD_FLUSH    3
#define PIODISK_CMD_IDENTIFY 4

#define PIODISK_STATUS_BUSY  0x01
#define PIODISK_STATUS_DRQ   0x02
#define PIODISK_STATUS_ERR   0x04
#define PIODISK_STATUS_READY 0x08

#define PIODISK_ERROR_READ_ONLY 3

/*
 * virtio-mmio (OASIS virtio 1.x, "Virtio Over MMIO"): eight transport
 * slots one page apart; slot n raises PLIC line 1 + n.  A slot with no
 * device behind it reads DeviceID 0.  Every register is 32 bits wide and
 * takes only aligned 32-bit loads and stores ("MMIO Device Register
 * Layout").  Version 2 is the modern interface; version 1 the "Legacy
 * interface", which QEMU 7.2 `virt` still presents unless started with
 * -global virtio-mmio.force-legacy=false.  Registers only one of them
 * has are marked (modern) or (legacy).
 */
#define VIRTIO_MMIO_BASE(n)     (0x10001000UL + 0x1000UL * (n))
#define VIRTIO_MMIO_SLOTS       8
#define VIRTIO_MMIO_IRQ(n)      (1 + (n))

#define VIRTIO_MMIO_MAGIC_VALUE         0x000   /* reads VIRTIO_MMIO_MAGIC */
#define VIRTIO_MMIO_VERSION             0x004   /* 2 modern, 1 legacy */
#define VIRTIO_MMIO_DEVICE_ID           0x008   /* VIRTIO_ID_*; 0: empty slot */
#define VIRTIO_MMIO_VENDOR_ID           0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010   /* 32 feature bits the device offers... */
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014   /* ...word 0 (bits 0-31) or 1 (bits 32-63) */
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020   /* 32 feature bits the driver accepts... */
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024   /* ...word 0 or 1 */
#define VIRTIO_MMIO_GUEST_PAGE_SIZE     0x028   /* (legacy) unit of QUEUE_PFN */
#define VIRTIO_MMIO_QUEUE_SEL           0x030   /* the queue the QUEUE_* registers mean */
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034   /* largest queue size; 0: no such queue */
#define VIRTIO_MMIO_QUEUE_NUM           0x038   /* the queue size the driver chose */
#define VIRTIO_MMIO_QUEUE_ALIGN         0x03c   /* (legacy) alignment of the used ring */
#define VIRTIO_MMIO_QUEUE_PFN           0x040   /* (legacy) page number of the queue; 0: unused */
#define VIRTIO_MMIO_QUEUE_READY         0x044   /* (modern) 1: the device may use the queue */
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050   /* write a queue index: "look at this queue" */
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060   /* VIRTIO_MMIO_INT_* pending */
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064   /* write the VIRTIO_MMIO_INT_* handled */
#define VIRTIO_MMIO_STATUS              0x070   /* VIRTIO_STATUS_*; write 0 to reset */
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080   /* (modern) descriptor table address */
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW    0x090   /* (modern) available ring address */
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH   0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW    0x0a0   /* (modern) used ring address */
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH   0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fc   /* (modern) changes when the config does */
#define VIRTIO_MMIO_CONFIG              0x100   /* device-specific configuration space */

#define VIRTIO_MMIO_MAGIC       0x74726976u     /* "virt", little-endian */
#define VIRTIO_MMIO_INT_VRING   0x1             /* the device used buffers */
#define VIRTIO_MMIO_INT_CONFIG  0x2             /* the configuration space changed */

/* Device IDs ("Device Types"). */
#define VIRTIO_ID_BLOCK         2

/* Device status bits ("Device Status Field").  A driver sets the first
 * four in this order while it brings the device up. */
#define VIRTIO_STATUS_ACKNOWLEDGE        1      /* the driver found a virtio device */
#define VIRTIO_STATUS_DRIVER             2      /* ...and knows how to drive it */
#define VIRTIO_STATUS_FEATURES_OK        8      /* (modern) feature negotiation done */
#define VIRTIO_STATUS_DRIVER_OK          4      /* the device is live */
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 64     /* set by the device: it gave up */
#define VIRTIO_STATUS_FAILED             128    /* set by the driver: it gave up */

/* Feature bits ("Feature Bits", "Block Device"), as 64-bit masks. */
#define VIRTIO_BLK_F_RO         (1ULL << 5)     /* read-only: writes fail */
#define VIRTIO_BLK_F_FLUSH      (1ULL << 9)     /* VIRTIO_BLK_T_FLUSH works */
#define VIRTIO_F_VERSION_1      (1ULL << 32)    /* modern: required from a version 2 device */

/* virtio-blk configuration space: struct virtio_blk_config ("Block Device"). */
#define VIRTIO_BLK_CONFIG_CAPACITY      0x00    /* le64: size in 512-byte sectors */

#endif
