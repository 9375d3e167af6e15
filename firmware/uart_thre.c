/*
 * uart_thre: the UART's "THR empty" interrupt, left pending, as
 * xv6-riscv leaves it.
 *
 * The UART may interrupt when its transmit holding register is empty
 * (IER.THRI).  Enabling that with THR already empty raises the interrupt
 * at once, and it stays pending until the driver reads IIR or writes THR.
 * This image, like xv6, never reads IIR: its handler claims the PLIC line,
 * counts, and completes.  So the UART's line stays high.
 *
 * What guests rely on (QEMU's PLIC): a source becomes pending when its
 * device updates the line, not again at complete because the line is
 * still high.  So while the hart idles, one interrupt, not a storm; and a
 * write to THR (the UART updates its line: empty again) pends exactly one
 * more.  Exit status: 0 when the counts are 1 and 2.
 */
#include "board.h"
#include "lib.h"
#include "trap.h"

#define UART_IER_THRI   0x02    /* interrupt when THR is empty */
#define IDLE_LOOPS      100000

static volatile uint32_t interrupts;

uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame)
{
    (void)mtval;
    (void)frame;
    if (mcause != (CAUSE_INTERRUPT | IRQ_M_EXT)) {
        puts("unexpected trap\n");
        finish(1);
    }
    uint32_t irq = mmio_read32(PLIC_CLAIM(PLIC_CTX_M));
    if (irq == UART0_IRQ)
        interrupts++;
    mmio_write32(PLIC_CLAIM(PLIC_CTX_M), irq);
    return mepc;
}

/* Let interrupts in for a while, then report how many came. */
static uint32_t idle_with_interrupts_on(void)
{
    csr_set(mstatus, MSTATUS_MIE);
    for (volatile int i = 0; i < IDLE_LOOPS; i++)
        ;
    csr_clear(mstatus, MSTATUS_MIE);
    return interrupts;
}

int main(void)
{
    csr_write(mtvec, trap_entry);
    mmio_write32(PLIC_PRIORITY(UART0_IRQ), 1);
    mmio_write32(PLIC_ENABLE(PLIC_CTX_M), 1u << UART0_IRQ);
    mmio_write32(PLIC_THRESHOLD(PLIC_CTX_M), 0);
    csr_set(mie, MIE_MEIE);

    uart_write(UART_IER, UART_IER_THRI);
    uint32_t idle = idle_with_interrupts_on();
    puts("THR-empty interrupts while idle: ");
    putdec(idle);
    putc('\n');

    uart_write(UART_THR, '.');
    uint32_t after_write = idle_with_interrupts_on();
    puts("\nafter one more write to THR: ");
    putdec(after_write);
    putc('\n');
    return !(idle == 1 && after_write == 2);
}
