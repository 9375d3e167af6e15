/*
 * bench_mmio: a trap-bound guest.  Writes the UART scratch register one
 * million times: every store is a VM exit into the host's device model
 * (benchmarks/bench_foundation.py).
 */
#include "board.h"

#define WRITES 1000000u

int main(void)
{
    for (uint32_t i = 0; i < WRITES; i++)
        uart_write(UART_SCR, (uint8_t)i);
    return uart_read(UART_SCR) == (uint8_t)(WRITES - 1) ? 0 : 1;
}
