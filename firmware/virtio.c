/*
 * virtio.c: a polling virtio-blk driver for virtio-mmio, versions 2
 * (modern) and 1 (legacy).  Section names in quotes are from the OASIS
 * virtio 1.x specification: "Virtio Over MMIO", "Split Virtqueues",
 * "Block Device" and the general "Device Initialization".
 *
 * The paravirtualized idea in one sentence: the driver and the device
 * share a queue in ordinary guest RAM (the split virtqueue), so describing
 * a request costs nothing but stores to memory; only the device's
 * registers trap, and one register write (QueueNotify) hands the device a
 * whole batch.  Compare pio_disk.c, where every 4 bytes of data trap.
 *
 * The queue has three parts, each written by one side only:
 *   descriptor table  (driver)  buffers: address, length, device-readable
 *                               or -writable, and the next one in a chain;
 *   available ring    (driver)  heads of the chains the device may take;
 *   used ring         (device)  heads of the chains it has finished.
 *
 * A block request is a chain of three descriptors ("Device Operation"):
 * a 16-byte header the device reads (type, sector), the data (the device
 * writes it for a read, reads it for a write) and one status byte the
 * device writes.  Request i of a batch always uses descriptors 3i, 3i+1
 * and 3i+2: a batch is over before the next starts, so no descriptor is
 * ever in use twice and no free list is needed.
 *
 * No interrupts: after notifying, the driver polls the used ring's idx
 * in RAM.  The device still raises its interrupt line, so the driver
 * acknowledges it after each batch (InterruptStatus -> InterruptACK).
 *
 * The guest runs in M-mode without paging, so a pointer is the physical
 * address the device needs.
 */
#include <stddef.h>
#include "board.h"
#include "lib.h"
#include "virtio.h"

/* Queue size: a power of 2 ("Split Virtqueues"), and room for a whole
 * batch of 3-descriptor chains. */
#define QUEUE_SIZE      64
#define CHAIN_LENGTH    3
#define PAGE_SIZE       4096    /* legacy GuestPageSize and QueueAlign */

/* How long to wait before deciding the device will not answer: polls of
 * the used ring (RAM: cheap, a second or so on QEMU or minivm), polls of
 * the Status register after a reset (each one a trap on minivm).  A device
 * that works answers long before: minivm's before the notify or the reset
 * write returns, QEMU's within milliseconds. */
#define POLL_LIMIT      400000000u
#define RESET_POLL_LIMIT 1000000u

/* "The Virtqueue Descriptor Table" */
struct virtq_desc {
    uint64_t addr;              /* guest-physical address of the buffer */
    uint32_t len;               /* its length in bytes */
    uint16_t flags;             /* VIRTQ_DESC_F_* */
    uint16_t next;              /* the next descriptor, if VIRTQ_DESC_F_NEXT */
};
#define VIRTQ_DESC_F_NEXT       1       /* the chain goes on at next */
#define VIRTQ_DESC_F_WRITE      2       /* device-writable (else device-readable) */

/* "The Virtqueue Available Ring": the driver's part, the "Driver Area". */
struct virtq_avail {
    uint16_t flags;             /* 0: do interrupt us when buffers are used */
    uint16_t idx;               /* where the driver puts the next entry (mod size) */
    uint16_t ring[QUEUE_SIZE];  /* heads of descriptor chains */
    uint16_t used_event;        /* only with VIRTIO_F_EVENT_IDX: unused here */
};

/* "The Virtqueue Used Ring": the device's part, the "Device Area". */
struct virtq_used_elem {
    uint32_t id;                /* head of the chain the device finished */
    uint32_t len;               /* bytes it wrote (ignored: see submit_batch) */
};
struct virtq_used {
    uint16_t flags;             /* VIRTQ_USED_F_NO_NOTIFY: "don't notify me" */
    uint16_t idx;               /* where the device puts the next entry (mod size) */
    struct virtq_used_elem ring[QUEUE_SIZE];
    uint16_t avail_event;       /* only with VIRTIO_F_EVENT_IDX: unused here */
};
#define VIRTQ_USED_F_NO_NOTIFY  1

/*
 * The whole queue in the layout the legacy interface requires ("Legacy
 * Interfaces: A Note on Virtqueue Layout"): descriptor table, available
 * ring, then the used ring at the next QueueAlign (page) boundary, all in
 * one page-aligned area whose page number goes to QueuePFN.  The modern
 * interface takes the three addresses separately and would accept any
 * layout; using this one for both keeps a single code path.  It lives in
 * .bss, which start.S zeroes: the spec wants the queue memory zeroed.
 */
static struct virtq {
    struct virtq_desc desc[QUEUE_SIZE];
    struct virtq_avail avail;
    struct virtq_used used __attribute__((aligned(PAGE_SIZE)));
} queue __attribute__((aligned(PAGE_SIZE)));

_Static_assert(QUEUE_SIZE >= CHAIN_LENGTH * VBLK_BATCH, "a batch must fit in the queue");
_Static_assert(offsetof(struct virtq, used) == PAGE_SIZE, "legacy layout: used ring on page 2");

/* The request header ("Device Operation": struct virtio_blk_req). */
struct virtio_blk_req_header {
    uint32_t type;              /* VIRTIO_BLK_T_* */
    uint32_t reserved;
    uint64_t sector;            /* first sector (0 for a flush) */
};

/* Headers and status bytes of the batch in flight. */
static struct virtio_blk_req_header headers[VBLK_BATCH];
static uint8_t statuses[VBLK_BATCH];

static uintptr_t base;          /* the device's slot */
static uint32_t version;        /* its transport version */
static uint64_t capacity;
static uint16_t avail_idx;      /* our copy of queue.avail.idx */
static uint16_t used_idx;       /* how far we have read queue.used */
static int batched;             /* requests added since the last notify */

static uint32_t reg_read(int reg)
{
    return mmio_read32(base + reg);
}

static void reg_write(int reg, uint32_t value)
{
    mmio_write32(base + reg, value);
}

/* The driver only ever adds status bits ("Device Status Field"). */
static void set_status(uint32_t bit)
{
    reg_write(VIRTIO_MMIO_STATUS, reg_read(VIRTIO_MMIO_STATUS) | bit);
}

/*
 * A full fence: every load and store (to RAM or to a device) before it is
 * seen by the device before any after it.  The spec asks for "a suitable
 * memory barrier" around ring updates; RISC-V harts may reorder accesses,
 * and the device is another observer of RAM.  The "memory" clobber also
 * stops the compiler from moving ring accesses across it.
 */
static inline void memory_barrier(void)
{
    __asm__ volatile("fence" ::: "memory");
}

/* Fields the device writes while we look: read them afresh every time. */
static uint16_t read_shared16(const uint16_t *field)
{
    return *(const volatile uint16_t *)field;
}

static uint32_t read_shared32(const uint32_t *field)
{
    return *(const volatile uint32_t *)field;
}

/* Give up on the device: say why, and tell it (FAILED). */
static int give_up(const char *why)
{
    puts("virtio-blk: ");
    puts(why);
    putc('\n');
    if (base)
        set_status(VIRTIO_STATUS_FAILED);
    return VBLK_DRIVER_ERROR;
}

/*
 * "MMIO Device Discovery": there is none, so look at every slot.  QEMU
 * fills the slots from the top (its first -device lands in the highest
 * free one), minivm from slot 0, so the slot is not worth printing.
 * "Device Initialization" (MMIO): MagicValue and Version first; DeviceID 0
 * is an empty slot.
 */
static int find_device(void)
{
    for (int n = 0; n < VIRTIO_MMIO_SLOTS; n++) {
        uintptr_t slot = VIRTIO_MMIO_BASE(n);
        if (mmio_read32(slot + VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC)
            continue;
        uint32_t slot_version = mmio_read32(slot + VIRTIO_MMIO_VERSION);
        if (slot_version != 1 && slot_version != 2)
            continue;
        if (mmio_read32(slot + VIRTIO_MMIO_DEVICE_ID) != VIRTIO_ID_BLOCK)
            continue;
        base = slot;
        version = slot_version;
        return 0;
    }
    return -1;
}

/* Two 32-bit words, selected by DeviceFeaturesSel. */
static uint64_t read_device_features(void)
{
    reg_write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t low = reg_read(VIRTIO_MMIO_DEVICE_FEATURES);
    reg_write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    uint64_t high = reg_read(VIRTIO_MMIO_DEVICE_FEATURES);
    return high << 32 | low;
}

/*
 * Only the modern interface gets both words.  Legacy devices have 32
 * feature bits: QEMU's reads word 1 as 0 and logs a write to it as a
 * guest error.
 */
static void write_driver_features(uint64_t features)
{
    reg_write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    reg_write(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
    if (version == 2) {
        reg_write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        reg_write(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    }
}

/* A 64-bit configuration field, as two aligned 32-bit reads ("MMIO Device
 * Register Layout" asks for exactly that). */
static uint64_t read_config64(int offset)
{
    uint64_t low = reg_read(VIRTIO_MMIO_CONFIG + offset);
    uint64_t high = reg_read(VIRTIO_MMIO_CONFIG + offset + 4);
    return high << 32 | low;
}

/*
 * The device may change the capacity between the two reads.  The modern
 * interface says so through ConfigGeneration: read it before and after,
 * and again if it moved ("Device Configuration Space").  The legacy one
 * has no such register: read until two reads agree.
 */
static uint64_t read_capacity(void)
{
    uint64_t value;
    if (version == 2) {
        uint32_t generation;
        do {
            generation = reg_read(VIRTIO_MMIO_CONFIG_GENERATION);
            value = read_config64(VIRTIO_BLK_CONFIG_CAPACITY);
        } while (generation != reg_read(VIRTIO_MMIO_CONFIG_GENERATION));
    } else {
        uint64_t again = read_config64(VIRTIO_BLK_CONFIG_CAPACITY);
        do {
            value = again;
            again = read_config64(VIRTIO_BLK_CONFIG_CAPACITY);
        } while (again != value);
    }
    return value;
}

/* "Virtqueue Configuration" (MMIO), and its legacy counterpart. */
static int setup_queue(void)
{
    reg_write(VIRTIO_MMIO_QUEUE_SEL, 0);
    if (reg_read(version == 2 ? VIRTIO_MMIO_QUEUE_READY : VIRTIO_MMIO_QUEUE_PFN) != 0)
        return give_up("queue 0 already in use");
    uint32_t max = reg_read(VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (max < QUEUE_SIZE) {
        /* 0 would mean there is no queue 0 at all. */
        puts("virtio-blk: QueueNumMax is ");
        putdec(max);
        puts(", need ");
        putdec(QUEUE_SIZE);
        putc('\n');
        return give_up("queue 0 too small");
    }
    uintptr_t address = (uintptr_t)&queue;
    if (version == 2) {
        reg_write(VIRTIO_MMIO_QUEUE_NUM, QUEUE_SIZE);
        reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)address);
        reg_write(VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)((uint64_t)address >> 32));
        address = (uintptr_t)&queue.avail;
        reg_write(VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)address);
        reg_write(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)((uint64_t)address >> 32));
        address = (uintptr_t)&queue.used;
        reg_write(VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)address);
        reg_write(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)((uint64_t)address >> 32));
        reg_write(VIRTIO_MMIO_QUEUE_READY, 1);
    } else {
        /* The device finds all three parts from one page number: the
         * descriptors at its start, the available ring right after them,
         * the used ring at the next QueueAlign boundary. */
        reg_write(VIRTIO_MMIO_GUEST_PAGE_SIZE, PAGE_SIZE);
        reg_write(VIRTIO_MMIO_QUEUE_NUM, QUEUE_SIZE);
        reg_write(VIRTIO_MMIO_QUEUE_ALIGN, PAGE_SIZE);
        reg_write(VIRTIO_MMIO_QUEUE_PFN, (uint32_t)(address / PAGE_SIZE));
    }
    return 0;
}

int vblk_find(struct vblk_info *info)
{
    if (find_device())
        return give_up("no block device");
    info->version = version;
    return 0;
}

/* "Device Initialization": the driver MUST follow this sequence. */
int vblk_init(struct vblk_info *info)
{
    /* 1. Reset, and wait until the device says it is done ("Device Reset"). */
    reg_write(VIRTIO_MMIO_STATUS, 0);
    for (uint32_t polls = 0; reg_read(VIRTIO_MMIO_STATUS) != 0; polls++)
        if (polls == RESET_POLL_LIMIT)
            return give_up("reset does not finish");
    /* 2-3. We noticed the device, and we can drive it. */
    set_status(VIRTIO_STATUS_ACKNOWLEDGE);
    set_status(VIRTIO_STATUS_DRIVER);

    /* 4. Accept only the features this driver uses.  Not EVENT_IDX or
     * INDIRECT_DESC: the plain rings do all we need.  RO because "a driver
     * SHOULD accept VIRTIO_BLK_F_RO if offered" ("Block Device"). */
    uint64_t offered = read_device_features();
    uint64_t wanted = VIRTIO_BLK_F_RO | VIRTIO_BLK_F_FLUSH;
    if (version == 2) {
        /* A modern device without VERSION_1 would be a legacy device
         * behind a modern register file: this driver does not do that. */
        if (!(offered & VIRTIO_F_VERSION_1))
            return give_up("version 2 device without VIRTIO_F_VERSION_1");
        wanted |= VIRTIO_F_VERSION_1;
    }
    uint64_t accepted = offered & wanted;
    write_driver_features(accepted);

    /* 5-6. FEATURES_OK, and check the device kept it: if not, it cannot
     * work with the subset we chose.  The legacy interface has no such
     * step ("Legacy Interface: Device Initialization"). */
    if (version == 2) {
        set_status(VIRTIO_STATUS_FEATURES_OK);
        if (!(reg_read(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK))
            return give_up("device refused our features");
    }

    /* 7. Device-specific setup: the one request queue, the capacity. */
    if (setup_queue())
        return VBLK_DRIVER_ERROR;
    capacity = read_capacity();

    /* 8. The device is live. */
    set_status(VIRTIO_STATUS_DRIVER_OK);

    info->capacity = capacity;
    info->read_only = (offered & VIRTIO_BLK_F_RO) != 0;
    info->can_flush = (accepted & VIRTIO_BLK_F_FLUSH) != 0;
    return 0;
}

__attribute__((weak)) uint64_t vblk_buffer_address(const void *buffer)
{
    return (uintptr_t)buffer;
}

/*
 * "Supplying Buffers to The Device", steps 1-2: one request into the
 * descriptor table and the available ring.  Not visible to the device
 * until submit_batch moves avail.idx.  length 0: no data (a flush).
 */
static void add_request(uint32_t type, uint64_t sector, void *data, uint32_t length)
{
    int i = batched++;
    uint16_t head = (uint16_t)(CHAIN_LENGTH * i);
    uint16_t last = head + 2;

    headers[i].type = type;
    headers[i].reserved = 0;
    headers[i].sector = sector;
    /* Not a status a device writes: shows up if it never wrote one. */
    statuses[i] = 0xff;

    struct virtq_desc *d = &queue.desc[head];
    d->addr = vblk_buffer_address(&headers[i]);
    d->len = sizeof headers[i];
    d->flags = VIRTQ_DESC_F_NEXT;               /* device-readable */
    d->next = length ? head + 1 : last;
    if (length) {
        d = &queue.desc[head + 1];
        d->addr = vblk_buffer_address(data);
        d->len = length;
        d->flags = VIRTQ_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0);
        d->next = last;
    }
    d = &queue.desc[last];
    d->addr = vblk_buffer_address(&statuses[i]);
    d->len = 1;
    d->flags = VIRTQ_DESC_F_WRITE;              /* end of the chain */
    d->next = 0;

    /* "Updating The Available Ring": entries past idx, idx untouched. */
    queue.avail.ring[(uint16_t)(avail_idx + i) % QUEUE_SIZE] = head;
}

/*
 * Hand the batch to the device with one notify, wait until it has used
 * every request, acknowledge its interrupt.  0 when all completed with
 * VIRTIO_BLK_S_OK, else the first other status, or VBLK_DRIVER_ERROR.
 */
static int submit_batch(void)
{
    int count = batched;
    batched = 0;

    /* Steps 4-5: descriptors and ring entries before idx, so the device
     * never sees an idx that covers entries it cannot see yet ("Updating
     * idx": the driver MUST perform a suitable memory barrier). */
    memory_barrier();
    avail_idx += (uint16_t)count;
    *(volatile uint16_t *)&queue.avail.idx = avail_idx;
    /* Step 6: idx out before we look at the device's flags ("Notifying The
     * Device"), and before the notify itself. */
    memory_barrier();
    /* Step 7: one notify for the batch, unless the device said it needs
     * none ("Available Buffer Notification Suppression", without
     * VIRTIO_F_EVENT_IDX: flags 1 SHOULD NOT, flags 0 MUST notify). */
    if (!(read_shared16(&queue.used.flags) & VIRTQ_USED_F_NO_NOTIFY))
        reg_write(VIRTIO_MMIO_QUEUE_NOTIFY, 0);

    /* "Receiving Used Buffers From The Device": poll used.idx in RAM (no
     * trap) until the device has put back every chain of the batch. */
    uint16_t done;
    uint32_t polls = 0;
    while ((done = (uint16_t)(read_shared16(&queue.used.idx) - used_idx)) < count) {
        if (++polls == POLL_LIMIT) {
            puts("virtio-blk: device status ");
            puthex(reg_read(VIRTIO_MMIO_STATUS), 2);
            putc('\n');
            return give_up("no answer from the device");
        }
    }
    /* What the device wrote before moving idx (used entries, status
     * bytes, data) is read only after seeing idx. */
    memory_barrier();

    /* Every used entry must name a chain of this batch, each once.  The
     * entries' len is not needed (the status byte says how it went) and
     * legacy devices are known to get it wrong ("Legacy Interface: The
     * Virtqueue Used Ring"). */
    uint32_t pending = (1u << count) - 1;
    if (done != count)
        return give_up("device used more buffers than it was given");
    for (; used_idx != avail_idx; used_idx++) {
        uint32_t id = read_shared32(&queue.used.ring[used_idx % QUEUE_SIZE].id);
        uint32_t request = id / CHAIN_LENGTH;
        if (id % CHAIN_LENGTH != 0 || request >= (uint32_t)count || !(pending & (1u << request)))
            return give_up("device used a chain it was not given");
        pending &= ~(1u << request);
    }

    /* The device raised its interrupt line for the batch ("Notifications
     * From The Device"); nothing takes the interrupt, but acknowledge it
     * as a driver must, so the line drops.  Only defined bits go back. */
    uint32_t interrupts = reg_read(VIRTIO_MMIO_INTERRUPT_STATUS);
    reg_write(VIRTIO_MMIO_INTERRUPT_ACK,
              interrupts & (VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG));

    for (int i = 0; i < count; i++)
        if (statuses[i] != VIRTIO_BLK_S_OK)
            return statuses[i];
    return VIRTIO_BLK_S_OK;
}

/* Split a transfer into requests of up to VBLK_REQUEST_SECTORS, batches
 * of up to VBLK_BATCH requests. */
static int transfer(uint32_t type, uint64_t sector, uint8_t *buffer, uint32_t count)
{
    /* "A driver MUST NOT submit a request which would cause a read or
     * write beyond capacity." */
    if (sector > capacity || count > capacity - sector)
        return give_up("request beyond the end of the disk");
    while (count) {
        while (count && batched < VBLK_BATCH) {
            uint32_t sectors = count < VBLK_REQUEST_SECTORS ? count : VBLK_REQUEST_SECTORS;
            add_request(type, sector, buffer, sectors * SECTOR_SIZE);
            sector += sectors;
            buffer += sectors * SECTOR_SIZE;
            count -= sectors;
        }
        int status = submit_batch();
        if (status)
            return status;
    }
    return VIRTIO_BLK_S_OK;
}

int vblk_read(uint64_t sector, void *buffer, uint32_t count)
{
    return transfer(VIRTIO_BLK_T_IN, sector, buffer, count);
}

int vblk_write(uint64_t sector, const void *buffer, uint32_t count)
{
    /* The device only reads this buffer. */
    return transfer(VIRTIO_BLK_T_OUT, sector, (uint8_t *)(uintptr_t)buffer, count);
}

/* A flush has sector 0 and no data ("Device Operation": MUST, SHOULD NOT). */
int vblk_flush(void)
{
    add_request(VIRTIO_BLK_T_FLUSH, 0, 0, 0);
    return submit_batch();
}
