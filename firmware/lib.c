/* lib.c: console output through the 16550 with LSR polling. */
#include "board.h"
#include "lib.h"

void putc(char c)
{
    while (!(uart_read(UART_LSR) & UART_LSR_THRE))
        ;
    uart_write(UART_THR, (uint8_t)c);
}

void puts(const char *s)
{
    while (*s)
        putc(*s++);
}

void puthex(uint64_t value, int digits)
{
    puts("0x");
    for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4)
        putc("0123456789abcdef"[(value >> shift) & 0xf]);
}

void putdec(uint64_t value)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n)
        putc(digits[--n]);
}
