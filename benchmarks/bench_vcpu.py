"""What do traps, interrupts and virtual time cost?  (issue: the vCPU)

Side by side in one run, the two sides taking turns, the best of several
repetitions reported (see bench_foundation.py for why the best).

1. Compute-bound, no timer armed: firmware/bench_loop.elf (100 M
   instructions) on minivm versus a bare Unicorn.  No clock is attached, so
   the guest should run free.  Target >= 0.9x.
2. Compute-bound with a 1 kHz periodic timer: firmware/bench_timer.elf (the
   same loop plus a timer interrupt every 10,000 ticks of virtual time) on
   minivm, versus bench_loop on a bare Unicorn (which has no timer at all).
   minivm pays for its time counter and for each interrupt.  Target >= 0.5x.
3. Interrupt round trip: firmware/bench_irq.elf takes 20,000 timer
   interrupts back to back (IRQ -> handler -> mret); printed in microseconds
   per round trip beside one bare MMIO trap (firmware/bench_mmio.elf on a
   bare Unicorn) for scale.

    python benchmarks/bench_vcpu.py [--quick]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_foundation import (INSTRUCTIONS, LOOP_ELF, MMIO_ELF, ROOT, TRAPS,  # noqa: E402
                              side_by_side, time_bare, time_minivm)

from minivm.fastpath import describe  # noqa: E402

TIMER_ELF = os.path.join(ROOT, "firmware", "bench_timer.elf")
IRQ_ELF = os.path.join(ROOT, "firmware", "bench_irq.elf")
ROUND_TRIPS = 20_000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 15")
    repetitions = 3 if parser.parse_args().quick else 15
    print(f"minivm: {describe()}; best of {repetitions} interleaved repetitions per side")
    rows = []

    m, b = side_by_side(repetitions, lambda: time_minivm(LOOP_ELF), lambda: time_bare(LOOP_ELF))
    rows.append(("no timer (MIPS)", INSTRUCTIONS / m / 1e6, INSTRUCTIONS / b / 1e6, b / m,
                 ">=", 0.9))

    m, b = side_by_side(repetitions, lambda: time_minivm(TIMER_ELF), lambda: time_bare(LOOP_ELF))
    rows.append(("1 kHz timer (MIPS)", INSTRUCTIONS / m / 1e6, INSTRUCTIONS / b / 1e6, b / m,
                 ">=", 0.5))

    m, b = side_by_side(repetitions, lambda: time_minivm(IRQ_ELF), lambda: time_bare(MMIO_ELF))
    irq_us, trap_us = m / ROUND_TRIPS * 1e6, b / TRAPS * 1e6
    print()
    print(f"{'measurement':<20} {'minivm':>9} {'bare':>9} {'ratio':>7}  target")
    for name, mine, bare, ratio, sense, target in rows:
        met = ratio <= target if sense == "<=" else ratio >= target
        print(f"{name:<20} {mine:>9.1f} {bare:>9.1f} {ratio:>6.2f}x  {sense} {target}x"
              f"  {'ok' if met else 'MISSED'}")
    print(f"{'interrupt round trip':<20} {irq_us:>8.1f}us   (one bare MMIO trap: {trap_us:.2f} us)")


if __name__ == "__main__":
    main()
