/*
 * uart_echo: interrupt-driven UART input.
 *
 * The UART raises its interrupt line (PLIC line 10) when a byte arrives
 * (IER: received data available).  The PLIC passes it to context 0 (hart 0
 * M-mode): priority 1 > threshold 0, line enabled.  mie.MEIE and
 * mstatus.MIE let it in, and main just sleeps in wfi.  The handler claims
 * the line, reads bytes while LSR.DR says one is waiting, echoes each one
 * upper-cased, and completes the claim.  On 'q' it prints how many bytes
 * it echoed and exits 0.  tests/golden/uart_echo.in is the input.
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define UART_IER_RDI    0x01    /* interrupt when a byte is received */

static uint32_t echoed;

static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

static void fail(const char *why, uintptr_t value)
{
    puts("FAIL: ");
    puts(why);
    puthex(value, 2 * sizeof(uintptr_t));
    putc('\n');
    finish(1);
}

/* Every byte waiting in the UART: echo it, or stop at 'q'. */
static void uart_drain(void)
{
    while (uart_read(UART_LSR) & UART_LSR_DR) {
        char c = (char)uart_read(UART_RBR);
        if (c == 'q') {
            puts("q: ");
            putdec(echoed);
            puts(" bytes echoed, bye\n");
            finish(0);
        }
        putc(upper(c));
        echoed++;
    }
}

uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)mtval;
    (void)frame;
    if (mcause != (CAUSE_INTERRUPT | IRQ_M_EXT))
        fail("unexpected trap, mcause=", mcause);

    uint32_t irq = mmio_read32(PLIC_CLAIM(PLIC_CTX_M));    /* claim */
    if (irq == UART0_IRQ)
        uart_drain();
    else if (irq != 0)          /* 0: someone else claimed it first */
        fail("unexpected PLIC line ", irq);
    mmio_write32(PLIC_CLAIM(PLIC_CTX_M), irq);              /* complete */
    return mepc;
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    puts("uart_echo: type away, q quits\n");

    /* PLIC: line 10 at priority 1, enabled for context 0, threshold 0. */
    mmio_write32(PLIC_PRIORITY(UART0_IRQ), 1);
    mmio_write32(PLIC_ENABLE(PLIC_CTX_M), 1u << UART0_IRQ);
    mmio_write32(PLIC_THRESHOLD(PLIC_CTX_M), 0);

    uart_write(UART_IER, UART_IER_RDI);
    csr_set(mie, MIE_MEIE);
    csr_set(mstatus, MSTATUS_MIE);

    /* Everything happens in the handler, which also ends the run. */
    for (;;)
        wfi();
}
