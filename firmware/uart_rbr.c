/*
 * uart_rbr: what reading RBR gives when no new byte is waiting.
 *
 * Bytes come from the UART's own loopback (MCR.LOOP: a byte written to THR
 * is received, not sent), so no input is needed.  With the FIFOs off, RBR
 * is one holding register: the 16550 (and QEMU) return the last byte
 * received again on every read until the next one arrives; an overrun
 * replaces it.  With the FIFOs on, reading an empty FIFO gives 0 on QEMU.
 * Each read is recorded with LSR as it was before the read, and printed
 * once loopback is off again.
 */
#include "board.h"
#include "lib.h"

#define UART_MCR_LOOP   0x10
#define UART_MCR_OUT2   0x08

struct read { const char *what; uint8_t lsr, rbr; };
static struct read reads[16];
static int count;

static void read_rbr(const char *what)
{
    reads[count].what = what;
    reads[count].lsr = uart_read(UART_LSR);
    reads[count].rbr = uart_read(UART_RBR);
    count++;
}

int main(void)
{
    uart_write(UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2);
    uart_write(UART_FCR, 0);                    /* FIFOs off */
    uart_write(UART_THR, 'A');
    read_rbr("fifo off, 'A' received");
    read_rbr("fifo off, read again");
    read_rbr("fifo off, and again");
    uart_write(UART_THR, 'B');
    uart_write(UART_THR, 'C');                  /* overruns 'B' */
    read_rbr("fifo off, 'B' then 'C'");
    read_rbr("fifo off, read again");
    uart_write(UART_FCR, UART_FCR_ENABLE);
    uart_write(UART_THR, 'D');
    uart_write(UART_THR, 'E');
    read_rbr("fifo on, 'D' 'E' received");
    read_rbr("fifo on, next");
    read_rbr("fifo on, empty");
    read_rbr("fifo on, empty again");
    uart_write(UART_FCR, 0);
    read_rbr("fifo off again, nothing new");
    uart_write(UART_MCR, UART_MCR_OUT2);

    for (int i = 0; i < count; i++) {
        puts(reads[i].what);
        puts(": LSR ");
        puthex(reads[i].lsr, 2);
        puts(" RBR ");
        puthex(reads[i].rbr, 2);
        putc('\n');
    }
    return 0;
}
