/*
 * virtio_irq: a virtio-blk read done the way small interrupt-driven
 * kernels do it (xv6-riscv's disk driver is one), with two checks.
 *
 * 1. Features: the driver reads and writes only word 0 of the feature
 *    bits (DeviceFeaturesSel/DriverFeaturesSel stay 0), so it never
 *    accepts VIRTIO_F_VERSION_1, which is bit 32.  It then sets
 *    FEATURES_OK and reads Status back to see whether the device kept it.
 *    QEMU 7.2 does; so must minivm (see minivm/devices/virtio_mmio.py).
 *
 * 2. The notify: the driver runs in S-mode with Sv39 paging, like a
 *    kernel; the request (read sector 0) completes by interrupt (PLIC line
 *    1 + slot, context 1, delegated to S-mode), and the store to
 *    QueueNotify is followed at once by an ordinary load of a RAM word,
 *    with interrupts masked (sstatus.SIE clear, as when a kernel holds a
 *    spinlock).  However the emulator finishes the notify (the device's
 *    DMA into a page the kernel maps without execute permission, the
 *    interrupt it raises), that load must run exactly once and load what
 *    is in RAM.
 *
 * Then it waits in wfi for the interrupt, prints the checksum of the
 * sector and how many interrupts it took, and exits with the number of
 * checks that failed.  Modern transport only (QEMU needs
 * -global virtio-mmio.force-legacy=false).
 *
 * Virtual memory (Sv39, virtual = physical):
 *   0x0000_0000  1 GiB page: devices                        RW
 *   0x8000_0000  2 MiB page: this image                     RWX
 *   0x8040_0000  2 MiB page: the rings and buffers (DMA)    RW, not X
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define QUEUE_SIZE      8
#define IRQ_S_EXT       9               /* supervisor external interrupt */
#define SIE_SEIE        (1UL << IRQ_S_EXT)
#define CANARY          0x5eed1e55u

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
#define VIRTQ_DESC_F_NEXT       1
#define VIRTQ_DESC_F_WRITE      2

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[QUEUE_SIZE];
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct {
        uint32_t id;
        uint32_t len;
    } ring[QUEUE_SIZE];
};

/* Everything the device reads or writes, in the DMA page. */
struct dma_area {
    struct virtq_desc desc[QUEUE_SIZE];
    struct virtq_avail avail;
    struct virtq_used used;
    struct {
        uint32_t type;
        uint32_t reserved;
        uint64_t sector;
    } header;
    uint8_t sector[512];
    uint8_t status;
};
#define DMA_BASE        0x80400000UL
#define dma             ((volatile struct dma_area *)DMA_BASE)

/* Page tables: the root, and one level below it for the RAM's first GiB. */
#define PTE_V   (1UL << 0)
#define PTE_R   (1UL << 1)
#define PTE_W   (1UL << 2)
#define PTE_X   (1UL << 3)
#define PTE_A   (1UL << 6)
#define PTE_D   (1UL << 7)
#define SATP_SV39 (8UL << 60)
static uint64_t root_table[512] __attribute__((aligned(4096)));
static uint64_t ram_table[512] __attribute__((aligned(4096)));

static uintptr_t base;
static uint32_t irq;
static volatile uint32_t canary = CANARY;     /* in the image's page */
static volatile uint32_t interrupts;
static volatile uint32_t completed;
static int failures;

static uint32_t reg_read(int reg)
{
    return mmio_read32(base + reg);
}

static void reg_write(int reg, uint32_t value)
{
    mmio_write32(base + reg, value);
}

static void result(int ok)
{
    puts(ok ? " ok\n" : " FAIL\n");
    failures += !ok;
}

static void __attribute__((noreturn)) unexpected(const char *mode, uintptr_t cause,
                                                 uintptr_t epc)
{
    puts(mode);
    puts(": unexpected trap, cause=");
    puthex(cause, 16);
    puts(" epc=");
    puthex(epc, 16);
    putc('\n');
    finish(1);
}

uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)mtval;
    (void)frame;
    unexpected("M", mcause, mepc);
}

/* The disk's interrupt, delegated to S-mode: claim, acknowledge, complete. */
uintptr_t strap_handler(uintptr_t scause, uintptr_t sepc, uintptr_t stval,
                        struct trap_frame *frame)
{
    (void)stval;
    (void)frame;
    if (scause != (CAUSE_INTERRUPT | IRQ_S_EXT))
        unexpected("S", scause, sepc);
    uint32_t claimed = mmio_read32(PLIC_CLAIM(PLIC_CTX_S));
    if (claimed == irq) {
        interrupts++;
        reg_write(VIRTIO_MMIO_INTERRUPT_ACK, reg_read(VIRTIO_MMIO_INTERRUPT_STATUS) & 3);
        completed = dma->used.idx;
    }
    mmio_write32(PLIC_CLAIM(PLIC_CTX_S), claimed);
    return sepc;
}

static int find_device(void)
{
    for (int n = 0; n < VIRTIO_MMIO_SLOTS; n++) {
        uintptr_t slot = VIRTIO_MMIO_BASE(n);
        if (mmio_read32(slot + VIRTIO_MMIO_MAGIC_VALUE) == VIRTIO_MMIO_MAGIC &&
            mmio_read32(slot + VIRTIO_MMIO_VERSION) == 2 &&
            mmio_read32(slot + VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_BLOCK) {
            base = slot;
            irq = VIRTIO_MMIO_IRQ(n);
            return 0;
        }
    }
    return -1;
}

/* Word 0 only, as xv6-riscv's virtio_disk_init does: VERSION_1 unasked for. */
static void negotiate_word_0(void)
{
    reg_write(VIRTIO_MMIO_STATUS, 0);
    reg_write(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    reg_write(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint32_t offered = reg_read(VIRTIO_MMIO_DEVICE_FEATURES);
    reg_write(VIRTIO_MMIO_DRIVER_FEATURES, offered & (uint32_t)VIRTIO_BLK_F_RO);
    reg_write(VIRTIO_MMIO_STATUS, reg_read(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_FEATURES_OK);
    puts("FEATURES_OK without VIRTIO_F_VERSION_1:");
    result(reg_read(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
}

static void set_up_queue(void)
{
    reg_write(VIRTIO_MMIO_QUEUE_SEL, 0);
    reg_write(VIRTIO_MMIO_QUEUE_NUM, QUEUE_SIZE);
    reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)(uintptr_t)dma->desc);
    reg_write(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    reg_write(VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(uintptr_t)&dma->avail);
    reg_write(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
    reg_write(VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(uintptr_t)&dma->used);
    reg_write(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
    reg_write(VIRTIO_MMIO_QUEUE_READY, 1);
    reg_write(VIRTIO_MMIO_STATUS, reg_read(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
}

static void set_desc(int n, uintptr_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    dma->desc[n].addr = addr;
    dma->desc[n].len = len;
    dma->desc[n].flags = flags;
    dma->desc[n].next = next;
}

/* One read of sector 0: header, data, status, as one chain. */
static void queue_read_request(void)
{
    dma->header.type = 0;       /* VIRTIO_BLK_T_IN */
    dma->header.sector = 0;
    dma->status = 0xff;
    set_desc(0, (uintptr_t)&dma->header, sizeof dma->header, VIRTQ_DESC_F_NEXT, 1);
    set_desc(1, (uintptr_t)dma->sector, sizeof dma->sector,
             VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
    set_desc(2, (uintptr_t)&dma->status, 1, VIRTQ_DESC_F_WRITE, 0);
    dma->avail.ring[0] = 0;
    __asm__ volatile("fence" ::: "memory");
    dma->avail.idx = 1;
    __asm__ volatile("fence" ::: "memory");
}

/* The store to QueueNotify, and right behind it a load from RAM. */
static uint32_t notify_then_load(void)
{
    uint32_t loaded = 0;
    __asm__ volatile("sw zero, 0(%1)\n\t"
                     "lw %0, 0(%2)"
                     : "+&r"(loaded)
                     : "r"(base + VIRTIO_MMIO_QUEUE_NOTIFY), "r"(&canary)
                     : "memory");
    return loaded;
}

static void __attribute__((noreturn)) kernel_main(void)
{
    csr_write(satp, SATP_SV39 | (uintptr_t)root_table >> 12);
    __asm__ volatile("sfence.vma" ::: "memory");
    if (find_device()) {
        puts("no modern virtio-blk device\n");
        finish(1);
    }
    negotiate_word_0();
    set_up_queue();

    mmio_write32(PLIC_PRIORITY(irq), 1);
    mmio_write32(PLIC_ENABLE(PLIC_CTX_S), 1u << irq);
    mmio_write32(PLIC_THRESHOLD(PLIC_CTX_S), 0);
    csr_set(sie, SIE_SEIE);

    /* With sstatus.SIE clear, as a kernel holding a spinlock notifies. */
    queue_read_request();
    uint32_t loaded = notify_then_load();
    puts("the load after the notify read ");
    puthex(loaded, 8);
    result(loaded == CANARY);

    /* wfi wakes on a pending interrupt even with SIE clear: let it in
     * between two checks, so it cannot slip in just before the wfi. */
    while (!completed) {
        wfi();
        csr_set(sstatus, MSTATUS_SIE);
        csr_clear(sstatus, MSTATUS_SIE);
    }
    puts("request done, status ");
    putdec(dma->status);
    puts(", fnv1a of sector 0: ");
    puthex(fnv1a(2166136261u, (const uint8_t *)dma->sector, sizeof dma->sector), 8);
    puts(", interrupts: ");
    putdec(interrupts);
    result(dma->status == 0 && interrupts == 1);
    finish(failures);
}

/* M-mode: open memory to S-mode, delegate the disk's interrupt, map, drop to S. */
int main(void)
{
    csr_write(mtvec, trap_entry);
    csr_write(pmpaddr0, -1UL);
    csr_write(pmpcfg0, 0x1f);
    csr_write(mideleg, 1UL << IRQ_S_EXT);
    csr_write(stvec, strap_entry);
    root_table[0] = PTE_R | PTE_W | PTE_A | PTE_D | PTE_V;          /* devices */
    root_table[2] = ((uintptr_t)ram_table >> 12) << 10 | PTE_V;     /* RAM: next level */
    ram_table[0] = (0x80000000UL >> 12) << 10 | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D | PTE_V;
    ram_table[2] = (DMA_BASE >> 12) << 10 | PTE_R | PTE_W | PTE_A | PTE_D | PTE_V;
    csr_clear(mstatus, MSTATUS_MPP);
    csr_set(mstatus, (uintptr_t)PRV_S << MSTATUS_MPP_SHIFT);
    csr_write(mepc, kernel_main);
    __asm__ volatile("mret");
    return 1;
}
