"""Virtual time against QEMU's real time: a timer-driven guest, wall clock.

firmware/ticker.elf prints a line every 100 ms of guest time for 2 s,
waiting in three ways: a spinning idle loop while the timer interrupt
prints (lines 1-10), a busy-wait on mtime (11-15), and wfi (16-20).  QEMU
runs guest time at host time, so it takes 2 s; minivm's guest time is
virtual (INSTRUCTIONS_PER_TICK, CLOCK_READ_TICKS in minivm/devices/clint.py),
so how long minivm takes depends on how fast it runs the guest.

Printed: the wall time at which each emulator, started from the command
line, printed the last line of each phase (start-up included), and the
ratio minivm / QEMU; the target for the whole run is <= 1.5x.  The two
emulators take turns; each figure is the best of N runs.

    python benchmarks/bench_timer_rate.py [--runs N]
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKER = os.path.join(ROOT, "firmware", "ticker.elf")
PHASES = {"line 10 (spin)": "spin: 10 lines, timer interrupt, idle loop spins",
          "line 15 (poll)": "poll: 5 lines, busy-wait on mtime",
          "line 20 (wfi)": "wfi: 5 lines, timer interrupt, hart in wfi"}
TARGET = 1.5


def stamps(command):
    """Seconds from start until each line of output appeared."""
    start = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    seen = {}
    for line in process.stdout:
        seen[line.decode().strip()] = time.monotonic() - start
    if process.wait() != 0:
        sys.exit(f"{command[0]} failed (exit {process.returncode})")
    missing = [line for line in PHASES if line not in seen]
    if missing:
        sys.exit(f"{command[0]} never printed {missing[0]!r}")
    return seen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    if shutil.which("qemu-system-riscv64") is None:
        sys.exit("qemu-system-riscv64 not found (Debian: qemu-system-misc)")
    qemu = ["qemu-system-riscv64", "-M", "virt", "-m", "128M", "-bios", "none",
            "-kernel", TICKER, "-nographic", "-monitor", "none"]
    ours = [sys.executable, "-m", "minivm", "run", TICKER]
    best = {"qemu": {}, "minivm": {}}
    for _ in range(runs):
        for name, command in (("qemu", qemu), ("minivm", ours)):
            for line, seconds in stamps(command).items():
                best[name][line] = min(seconds, best[name].get(line, seconds))

    print(f"firmware/ticker.elf, wall time to each line (best of {runs}, start-up included)")
    print(f"  {'phase':<52} {'QEMU':>7} {'minivm':>7} {'ratio':>6}")
    for line, what in PHASES.items():
        q, m = best["qemu"][line], best["minivm"][line]
        print(f"  {what:<52} {q:6.2f}s {m:6.2f}s {m / q:5.2f}x")
    last = list(PHASES)[-1]
    ratio = best["minivm"][last] / best["qemu"][last]
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"  whole run: {ratio:.2f}x QEMU's wall time ({verdict} the <= {TARGET}x target)")


if __name__ == "__main__":
    main()
