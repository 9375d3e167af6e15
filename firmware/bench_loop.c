/*
 * bench_loop: a compute-bound guest.  A tight loop that touches no device
 * until the end, for measuring how fast guest code runs free
 * (benchmarks/bench_foundation.py).
 */
#include "board.h"

#define ITERATIONS 50000000u   /* 2 instructions each: 100 M instructions */

int main(void)
{
    uint32_t i = 0;
    /* The empty asm keeps the compiler from folding the loop away. */
    while (i < ITERATIONS) {
        __asm__ volatile("" : "+r"(i));
        i++;
    }
    return 0;
}
