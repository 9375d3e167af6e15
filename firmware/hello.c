/*
 * hello: the first image.  Prints through the UART with LSR polling, pokes
 * a few UART registers and prints what it reads back, then exits through
 * the finisher.  Every line must match QEMU `virt` byte for byte.
 */
#include "board.h"
#include "lib.h"

static void show(const char *name, uint8_t value)
{
    puts(name);
    puts(" = ");
    puthex(value, 2);
    putc('\n');
}

int main(void)
{
    puts("Hello from minivm firmware!\n");

    /* Power-on state as a driver first sees it. */
    show("LSR", uart_read(UART_LSR));
    show("IIR", uart_read(UART_IIR));

    /* The scratch register keeps whatever was written. */
    uart_write(UART_SCR, 0xa5);
    show("SCR", uart_read(UART_SCR));

    /* Program 38400 baud 8N1 the way Linux's 8250 driver does. */
    uart_write(UART_LCR, UART_LCR_DLAB);
    uart_write(UART_DLL, 3);
    uart_write(UART_DLM, 0);
    uint8_t divisor = uart_read(UART_DLL);
    /* Clear DLAB before printing: with it set, offset 0 is DLL, not THR. */
    uart_write(UART_LCR, UART_LCR_8N1);
    show("DLL", divisor);
    show("LCR", uart_read(UART_LCR));
    uart_write(UART_FCR, UART_FCR_ENABLE);
    show("IIR with FIFO", uart_read(UART_IIR));

    puts("Bye.\n");
    return 0;
}
