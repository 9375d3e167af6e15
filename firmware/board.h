/*
 * board.h: the machine as firmware sees it.
 *
 * Addresses follow QEMU's `virt` board, so every image in this folder runs
 * unchanged on `qemu-system-riscv64 -M virt -bios none -kernel X.elf` and on
 * minivm.  minivm's memory map lives in minivm/machine.py; keep the two equal.
 */
#ifndef BOARD_H
#define BOARD_H

#include <stdint.h>

/* sifive_test "finisher": one write ends the simulation. */
#define FINISHER_BASE   0x00100000UL
#define FINISHER_PASS   0x5555u             /* exit status 0 */
#define FINISHER_FAIL   0x3333u             /* (code << 16) | FAIL: exit status code */
#define FINISHER_RESET  0x7777u             /* restart the machine */

/* 16550A UART0; each register is one byte wide, one byte apart. */
#define UART0_BASE      0x10000000UL
#define UART_RBR        0   /* receive buffer (read, DLAB=0) */
#define UART_THR        0   /* transmit holding (write, DLAB=0) */
#define UART_DLL        0   /* divisor latch low (DLAB=1) */
#define UART_IER        1   /* interrupt enable (DLAB=0) */
#define UART_DLM        1   /* divisor latch high (DLAB=1) */
#define UART_IIR        2   /* interrupt identification (read) */
#define UART_FCR        2   /* FIFO control (write) */
#define UART_LCR        3   /* line control; bit 7 is DLAB */
#define UART_MCR        4   /* modem control */
#define UART_LSR        5   /* line status */
#define UART_MSR        6   /* modem status */
#define UART_SCR        7   /* scratch */

#define UART_LCR_DLAB   0x80
#define UART_LCR_8N1    0x03
#define UART_FCR_ENABLE 0x01
#define UART_LSR_DR     0x01    /* a byte is waiting in RBR */
#define UART_LSR_THRE   0x20    /* THR can take a byte */

static inline void mmio_write8(uintptr_t addr, uint8_t value)
{
    *(volatile uint8_t *)addr = value;
}

static inline uint8_t mmio_read8(uintptr_t addr)
{
    return *(volatile uint8_t *)addr;
}

static inline void mmio_write32(uintptr_t addr, uint32_t value)
{
    *(volatile uint32_t *)addr = value;
}

static inline uint8_t uart_read(int reg)
{
    return mmio_read8(UART0_BASE + reg);
}

static inline void uart_write(int reg, uint8_t value)
{
    mmio_write8(UART0_BASE + reg, value);
}

/* Finish the run: status 0 is PASS, anything else FAIL with that code. */
static inline void __attribute__((noreturn)) finish(uint32_t status)
{
    if (status == 0)
        mmio_write32(FINISHER_BASE, FINISHER_PASS);
    else
        mmio_write32(FINISHER_BASE, (status << 16) | FINISHER_FAIL);
    for (;;)
        ;
}

#endif
