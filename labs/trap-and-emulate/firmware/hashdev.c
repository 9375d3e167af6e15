/*
 * hashdev: the guest side of the trap-and-emulate lab (labs/trap-and-emulate).
 *
 * Two "hash accelerators" sit in a window of four pages at 0x1030_0000:
 * hash0 in page 0, hash1 in page 2, pages 1 and 3 empty.  Every access to
 * them is a VM exit, answered by the student's Python model.  Each check
 * prints "NAME: ok" or "NAME: FAIL (...)"; the exit status is the number of
 * failed checks.  The guest computes FNV-1a itself (lib.h) and compares.
 *
 * Registers of a device (32-bit; offsets within its page):
 *   0x00 MAGIC r  0x48534148 ("HASH")    0x04 VERSION r 1
 *   0x08 CONTROL w 1: reset the hash     0x0C DATA w  hash the 1, 2 or 4 bytes written
 *   0x10 RESULT r the FNV-1a so far      0x14 COUNT r bytes hashed since the reset
 *   0x18 SCRATCH rw
 */
#include "board.h"
#include "lib.h"

#define WINDOW          0x10300000UL
#define HASH0           (WINDOW + 0x0000)
#define HASH1           (WINDOW + 0x2000)
#define EMPTY1          (WINDOW + 0x1000)
#define EMPTY3          (WINDOW + 0x3000)

#define MAGIC           0x00
#define VERSION         0x04
#define CONTROL         0x08
#define DATA            0x0C
#define RESULT          0x10
#define COUNT           0x14
#define SCRATCH         0x18

#define HASH_MAGIC      0x48534148u
#define CONTROL_RESET   1u
#define FNV_BASIS       2166136261u

static int failures;

static uint32_t rd(uintptr_t device, int reg)
{
    return mmio_read32(device + reg);
}

static void wr(uintptr_t device, int reg, uint32_t value)
{
    mmio_write32(device + reg, value);
}

static void wr8(uintptr_t device, int reg, uint8_t value)
{
    *(volatile uint8_t *)(device + reg) = value;
}

static void wr16(uintptr_t device, int reg, uint16_t value)
{
    *(volatile uint16_t *)(device + reg) = value;
}

static uint32_t hash_of(const char *text, int length)
{
    return fnv1a(FNV_BASIS, (const uint8_t *)text, length);
}

/* One comparison; the first failure of a check is reported. */
static int expect(const char *check, const char *what, uint32_t got, uint32_t want, int *ok)
{
    if (got == want || !*ok)
        return got == want;
    *ok = 0;
    puts(check);
    puts(": FAIL (");
    puts(what);
    puts(" read ");
    puthex(got, 8);
    puts(", expected ");
    puthex(want, 8);
    puts(")\n");
    return 0;
}

static void report(const char *check, int ok)
{
    if (ok) {
        puts(check);
        puts(": ok\n");
    } else {
        failures++;
    }
}

static void feed_words(uintptr_t device, const char *text, int length)
{
    for (int i = 0; i < length; i += 4) {
        uint32_t word = (uint32_t)(uint8_t)text[i] | (uint32_t)(uint8_t)text[i + 1] << 8 |
                        (uint32_t)(uint8_t)text[i + 2] << 16 | (uint32_t)(uint8_t)text[i + 3] << 24;
        wr(device, DATA, word);
    }
}

static void check_magic(void)
{
    int ok = 1;
    expect("magic", "MAGIC", rd(HASH0, MAGIC), HASH_MAGIC, &ok);
    expect("magic", "VERSION", rd(HASH0, VERSION), 1, &ok);
    report("magic", ok);
}

static void check_scratch(void)
{
    int ok = 1;
    wr(HASH0, SCRATCH, 0xdeadbeefu);
    expect("scratch", "SCRATCH", rd(HASH0, SCRATCH), 0xdeadbeefu, &ok);
    wr(HASH0, SCRATCH, 0x12345678u);
    expect("scratch", "SCRATCH", rd(HASH0, SCRATCH), 0x12345678u, &ok);
    report("scratch", ok);
}

static void check_words(void)
{
    static const char text[] = "trap-and-emulate";      /* 16 bytes */
    int ok = 1;
    wr(HASH0, CONTROL, CONTROL_RESET);
    feed_words(HASH0, text, 16);
    expect("words", "RESULT", rd(HASH0, RESULT), hash_of(text, 16), &ok);
    expect("words", "COUNT", rd(HASH0, COUNT), 16, &ok);
    report("words", ok);
}

static void check_bytes(void)
{
    static const char text[] = "minivm!?";
    int ok = 1;
    wr(HASH0, CONTROL, CONTROL_RESET);
    for (int i = 0; i < 6; i++)
        wr8(HASH0, DATA, (uint8_t)text[i]);
    expect("bytes", "RESULT after 6 byte writes", rd(HASH0, RESULT), hash_of(text, 6), &ok);
    wr16(HASH0, DATA, (uint16_t)((uint8_t)text[6] | (uint8_t)text[7] << 8));
    expect("bytes", "RESULT after a halfword write", rd(HASH0, RESULT), hash_of(text, 8), &ok);
    expect("bytes", "COUNT", rd(HASH0, COUNT), 8, &ok);
    report("bytes", ok);
}

static void check_reset(void)
{
    int ok = 1;
    wr(HASH0, CONTROL, CONTROL_RESET);
    expect("reset", "RESULT after a reset", rd(HASH0, RESULT), FNV_BASIS, &ok);
    feed_words(HASH0, "abcdefgh", 8);
    wr(HASH0, CONTROL, CONTROL_RESET);
    expect("reset", "RESULT after a reset", rd(HASH0, RESULT), FNV_BASIS, &ok);
    expect("reset", "COUNT after a reset", rd(HASH0, COUNT), 0, &ok);
    feed_words(HASH0, "wxyz", 4);
    expect("reset", "RESULT after a reset and 4 bytes", rd(HASH0, RESULT), hash_of("wxyz", 4), &ok);
    report("reset", ok);
}

static void check_control(void)
{
    int ok = 1;
    wr(HASH0, CONTROL, CONTROL_RESET);
    feed_words(HASH0, "abcd", 4);
    wr(HASH0, CONTROL, 0);
    wr(HASH0, CONTROL, 2);
    expect("control", "COUNT after CONTROL writes of 0 and 2", rd(HASH0, COUNT), 4, &ok);
    expect("control", "RESULT after CONTROL writes of 0 and 2", rd(HASH0, RESULT),
           hash_of("abcd", 4), &ok);
    report("control", ok);
}

static void check_two_devices(void)
{
    int ok = 1;
    wr(HASH0, CONTROL, CONTROL_RESET);
    wr(HASH1, CONTROL, CONTROL_RESET);
    feed_words(HASH0, "abcd", 4);
    feed_words(HASH1, "wxyz", 4);
    feed_words(HASH0, "efgh", 4);
    expect("two-devices", "hash0 RESULT", rd(HASH0, RESULT), hash_of("abcdefgh", 8), &ok);
    expect("two-devices", "hash1 RESULT", rd(HASH1, RESULT), hash_of("wxyz", 4), &ok);
    expect("two-devices", "hash1 COUNT", rd(HASH1, COUNT), 4, &ok);
    wr(HASH0, SCRATCH, 0x11111111u);
    wr(HASH1, SCRATCH, 0x22222222u);
    expect("two-devices", "hash0 SCRATCH", rd(HASH0, SCRATCH), 0x11111111u, &ok);
    expect("two-devices", "hash1 SCRATCH", rd(HASH1, SCRATCH), 0x22222222u, &ok);
    expect("two-devices", "hash1 MAGIC", rd(HASH1, MAGIC), HASH_MAGIC, &ok);
    report("two-devices", ok);
}

static void check_empty(void)
{
    int ok = 1;
    wr(HASH0, SCRATCH, 0xabcd1234u);
    expect("empty", "page 1 (no device) +0x0", rd(EMPTY1, MAGIC), 0, &ok);
    wr(EMPTY1, SCRATCH, 5);
    expect("empty", "page 1 (no device) +0x18", rd(EMPTY1, SCRATCH), 0, &ok);
    expect("empty", "hash0 SCRATCH after a write to page 1", rd(HASH0, SCRATCH), 0xabcd1234u, &ok);
    expect("empty", "page 3 (no device) +0x10", rd(EMPTY3, RESULT), 0, &ok);
    expect("empty", "hash0 +0x100 (no register)", rd(HASH0, 0x100), 0, &ok);
    wr(HASH0, 0x100, 7);
    expect("empty", "hash0 +0x100 after a write", rd(HASH0, 0x100), 0, &ok);
    wr(HASH0, MAGIC, 0);
    expect("empty", "MAGIC after a write to it", rd(HASH0, MAGIC), HASH_MAGIC, &ok);
    expect("empty", "DATA (write-only)", rd(HASH0, DATA), 0, &ok);
    expect("empty", "CONTROL (write-only)", rd(HASH0, CONTROL), 0, &ok);
    report("empty", ok);
}

/*
 * A driver's settling delay: spin VERSION x 1000 times.  A device that
 * answers VERSION with a huge number makes the guest spin (with no exits)
 * until minivm's instruction budget (--max-insns) stops it.
 */
static void settle(void)
{
    uint32_t rounds = rd(HASH0, VERSION) * 1000u;
    for (volatile uint32_t i = 0; i < rounds; i++)
        ;
}

int main(void)
{
    puts("hashdev: two hash accelerators at ");
    puthex(WINDOW, 8);
    putc('\n');
    settle();
    check_magic();
    check_scratch();
    check_words();
    check_bytes();
    check_reset();
    check_control();
    check_two_devices();
    check_empty();
    puts(failures ? "hashdev: some checks failed\n" : "hashdev: all checks passed\n");
    return failures;
}
