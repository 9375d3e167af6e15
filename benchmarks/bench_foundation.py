"""How much does minivm cost on top of the Unicorn it is built on?

Each measurement runs minivm and a "bare" Unicorn doing the same work, side
by side in one run: the two sides take turns over several repetitions and
each reports its best (fastest) repetition, so a noisy, shared machine
slows both alike.  Best, not median: the same guest loop on the same
Unicorn runs at one of two speeds, about 3.5x apart, from one Uc instance to
the next (it looks like host code alignment: which mode a run gets is
chance), so a median of a few runs says more about luck than about minivm.

1. Start-up: wall time of `python -m minivm run hello` (a whole subprocess)
   versus a subprocess that only imports unicorn, creates a RISC-V CPU and
   maps 128 MiB of RAM.  The ratio is minivm/bare time; target <= 1.5x:
   minivm's own imports, ELF loading and device set-up may add at most half
   again what Unicorn itself needs.

2. MMIO trap round trip: firmware/bench_mmio.elf stores to the UART scratch
   register 1,000,000 times; every store leaves the JIT-compiled guest code
   for a Python callback.  minivm routes it through its bus and 16550 model;
   the bare side registers callbacks that do nothing.  Reported in
   microseconds per trap; the ratio is minivm/bare time; target <= 1.5x.

3. Compute-bound: firmware/bench_loop.elf runs a 100 M instruction loop that
   touches no device.  Reported in MIPS (millions of guest instructions per
   second); the ratio is minivm/bare speed; target >= 0.9x: with nothing to
   trap, minivm should run guest code as fast as Unicorn does.

Timings are only printed, never asserted.

    python benchmarks/bench_foundation.py [--quick]
"""
import argparse
import compileall
import gc
import os
import subprocess
import sys
import time

import unicorn
from elftools.elf.elffile import ELFFile
from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV64, Uc

from minivm.fastpath import describe
from minivm.machine import Machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MMIO_ELF = os.path.join(ROOT, "firmware", "bench_mmio.elf")
LOOP_ELF = os.path.join(ROOT, "firmware", "bench_loop.elf")
TRAPS = 1_000_000 + 1 + 1         # the stores, the read back, the finisher
INSTRUCTIONS = 100e6

RAM_BASE, RAM_SIZE = 0x8000_0000, 128 << 20
UART_BASE, FINISHER_BASE = 0x1000_0000, 0x10_0000

MINIVM_START = [sys.executable, "-m", "minivm", "run", "hello"]
BARE_START = [sys.executable, "-c",
              "import unicorn; u = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64);"
              " u.mem_map(0x80000000, 128 << 20)"]


# -- the two sides of each measurement: each returns seconds -----------------

def time_subprocess(command):
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - start


def time_minivm(path):
    machine = Machine(path)
    start = time.perf_counter()
    machine.run()
    return time.perf_counter() - start


def time_bare(path):
    """The same ELF on a plain Unicorn: RAM, do-nothing UART, a finisher."""
    uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV64)
    uc.mem_map(RAM_BASE, RAM_SIZE)
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        entry = elf["e_entry"]
        for segment in elf.iter_segments():
            if segment["p_type"] != "PT_LOAD":
                continue
            address, data = segment["p_paddr"], segment.data()
            if address < RAM_BASE:     # only headers and padding lie below RAM
                data, address = data[RAM_BASE - address:], RAM_BASE
            if data:
                uc.mem_write(address, data)

    def uart_read(uc, offset, size, user_data):
        return 0                       # so bench_mmio's check fails: exit code 1

    def uart_write(uc, offset, size, value, user_data):
        pass

    def finisher(uc, offset, size, value, user_data):
        uc.emu_stop()

    uc.mmio_map(UART_BASE, 0x1000, uart_read, None, uart_write, None)
    uc.mmio_map(FINISHER_BASE, 0x1000, None, None, finisher, None)
    start = time.perf_counter()
    uc.emu_start(entry, 0xFFFF_FFFF_FFFF_FFFF)
    return time.perf_counter() - start


def side_by_side(repetitions, minivm, bare):
    """Best seconds of each side, taking turns (and swapping who goes first)."""
    times = {minivm: [], bare: []}
    for rep in range(repetitions):
        for side in ((minivm, bare) if rep % 2 == 0 else (bare, minivm)):
            gc.collect()
            times[side].append(side())
    return min(times[minivm]), min(times[bare])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 9")
    repetitions = 3 if parser.parse_args().quick else 9

    print(f"Unicorn {unicorn.__version__}; minivm: {describe()}; "
          f"best of {repetitions} interleaved repetitions per side "
          f"({3 * repetitions} for start-up)")
    # Unicorn's bytecode was compiled when pip installed it; compile minivm's
    # too, or a PYTHONDONTWRITEBYTECODE environment recompiles it every start.
    compileall.compile_dir(os.path.join(ROOT, "minivm"), quiet=1)
    # One untimed run of each, so the first timed one does not pay for cold
    # caches (this one also fills minivm's ELF cache, as any earlier run would).
    time_subprocess(MINIVM_START), time_subprocess(BARE_START)
    rows = []

    m, b = side_by_side(3 * repetitions, lambda: time_subprocess(MINIVM_START),
                        lambda: time_subprocess(BARE_START))
    rows.append(("start-up (ms)", m * 1e3, b * 1e3, m / b, "<=", 1.5))
    print(f"  start-up:  minivm {m * 1e3:.0f} ms, bare {b * 1e3:.0f} ms")

    m, b = side_by_side(repetitions, lambda: time_minivm(MMIO_ELF), lambda: time_bare(MMIO_ELF))
    rows.append(("MMIO trap (us)", m / TRAPS * 1e6, b / TRAPS * 1e6, m / b, "<=", 1.5))
    print(f"  MMIO:      minivm {m:.2f} s, bare {b:.2f} s for {TRAPS:,} traps")

    m, b = side_by_side(repetitions, lambda: time_minivm(LOOP_ELF), lambda: time_bare(LOOP_ELF))
    rows.append(("compute (MIPS)", INSTRUCTIONS / m / 1e6, INSTRUCTIONS / b / 1e6, b / m,
                 ">=", 0.9))
    print(f"  compute:   minivm {m:.2f} s, bare {b:.2f} s for 100 M instructions")

    print()
    print(f"{'measurement':<16} {'minivm':>8} {'bare':>8} {'ratio':>7}  {'target':<8}")
    for name, mine, bare, ratio, sense, target in rows:
        met = ratio <= target if sense == "<=" else ratio >= target
        print(f"{name:<16} {mine:>8.2f} {bare:>8.2f} {ratio:>6.2f}x  {sense} {target}x"
              f"  {'ok' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
