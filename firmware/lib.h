/* lib.h: the few helpers every firmware image shares (console output). */
#ifndef LIB_H
#define LIB_H

#include <stdint.h>

void putc(char c);
void puts(const char *s);            /* no newline added */
void puthex(uint64_t value, int digits);
void putdec(uint64_t value);

#endif
