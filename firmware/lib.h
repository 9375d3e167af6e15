/* lib.h: the few helpers every firmware image shares (console output; a checksum). */
#ifndef LIB_H
#define LIB_H

#include <stdint.h>

void putc(char c);
void puts(const char *s);            /* no newline added */
void puthex(uint64_t value, int digits);
void putdec(uint64_t value);

/* FNV-1a, 32 bits: the disk demos' checksum (start with hash = 2166136261). */
static inline uint32_t fnv1a(uint32_t hash, const uint8_t *bytes, int length)
{
    for (int i = 0; i < length; i++) {
        hash ^= bytes[i];
        hash *= 16777619u;
    }
    return hash;
}

#endif
