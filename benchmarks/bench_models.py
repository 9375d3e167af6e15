"""The three device models side by side: what moving the same 16 MiB costs.

Each guest reads the first 64 KiB of a 1 MiB image 256 times:
  pio_bench          through the PIO disk's data register, 4 bytes per trap (emulated)
  virtio_bench       through virtio-blk, 16 requests of 4 KiB per notify (paravirtualized)
  passthrough_bench  straight from the file mapped into its memory (passthrough)
virtio_bench runs twice: on the Cython virtqueue and on its pure-Python twin.

Printed: guest run time (Machine.run, not start-up), traps, traps per KiB,
throughput, and the ratios the issues ask for:
  virtio vs PIO, same bytes           >= 100x fewer traps, >= 100x less time
  Cython vs pure-Python virtqueue     >= 10x
  virtio vs the host's own pread of the same 64 KiB, 256 times   target >= 0.5x
  virtio vs QEMU TCG, same firmware and image: the marginal cost of the
  16 MiB (wall time of virtio_bench minus hello, each on its own emulator)   >= 1.0x
The two sides of each ratio take turns; each figure is the best of N runs.

    python benchmarks/bench_models.py [--quick]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from minivm.machine import Machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
MIB = 16
CHUNK, ROUNDS = 64 * 1024, 256


def elf(name):
    return os.path.join(FIRMWARE, f"{name}.elf")


class TwinTimer:
    """Time spent inside the virtqueue twin itself (VirtioBlk.process)."""
    seconds = 0.0

    @classmethod
    def install(cls):
        from minivm.devices.virtio_blk import VirtioBlk
        original = VirtioBlk.process

        def timed(self, *args):
            start = time.perf_counter()
            try:
                return original(self, *args)
            finally:
                cls.seconds += time.perf_counter() - start
        VirtioBlk.process = timed


def twin_time(pure, image):
    TwinTimer.seconds = 0.0
    run_guest("virtio_bench", image, pure=pure, virtio_blk=[image])
    return TwinTimer.seconds


def run_guest(name, image, pure=False, **devices):
    """(seconds in Machine.run, traps taken by the data device, exit code)."""
    saved = os.environ.get("MINIVM_PURE")
    os.environ["MINIVM_PURE"] = "1" if pure else "0"
    import minivm.fastpath
    minivm.fastpath._module = minivm.fastpath._UNSET      # choose the twin afresh
    try:
        machine = Machine(elf(name), **devices)
        start = time.perf_counter()
        result = machine.run()
        seconds = time.perf_counter() - start
    finally:
        if saved is None:
            os.environ.pop("MINIVM_PURE", None)
        else:
            os.environ["MINIVM_PURE"] = saved
        minivm.fastpath._module = minivm.fastpath._UNSET
    traps = sum(numbers["traps"] for device, numbers in result.stats.items()
                if device not in ("uart0", "finisher"))
    return seconds, traps, result.exit_code


def host_pread(image):
    fd = os.open(image, os.O_RDONLY)
    buffer = bytearray(CHUNK)
    start = time.perf_counter()
    for _ in range(ROUNDS):
        os.preadv(fd, [buffer], 0)
    seconds = time.perf_counter() - start
    os.close(fd)
    return seconds


def wall(command):
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def qemu_command(name, image):
    return ["qemu-system-riscv64", "-M", "virt", "-m", "128M", "-bios", "none",
            "-global", "virtio-mmio.force-legacy=false", "-kernel", elf(name),
            "-nographic", "-monitor", "none",
            "-drive", f"file={image},if=none,format=raw,id=d0",
            "-device", "virtio-blk-device,drive=d0"]


def minivm_command(name, image):
    return [sys.executable, "-m", "minivm", "run", elf(name), "--virtio-blk", image]


def best(repetitions, *measures):
    """Best of each measure, taking turns."""
    results = [[] for _ in measures]
    for _ in range(repetitions):
        for slot, measure in enumerate(measures):
            results[slot].append(measure())
    return [min(values, key=lambda value: value[0] if isinstance(value, tuple) else value)
            for values in results]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    repetitions = 2 if parser.parse_args().quick else 5
    folder = tempfile.mkdtemp(prefix="minivm-bench-")
    image = os.path.join(folder, "disk.img")
    with open(image, "wb") as stream:
        stream.write(os.urandom(1 << 20))

    pio, virtio, pure, mapped = best(
        repetitions,
        lambda: run_guest("pio_bench", image, disk=image),
        lambda: run_guest("virtio_bench", image, virtio_blk=[image]),
        lambda: run_guest("virtio_bench", image, pure=True, virtio_blk=[image]),
        lambda: run_guest("passthrough_bench", image, passthrough=[f"{image}@0x40000000"]))
    print(f"moving {MIB} MiB (64 KiB x {ROUNDS}) from a disk image into the guest\n")
    print(f"{'model':<34} {'run time':>10} {'traps':>9} {'traps/KiB':>10} {'MB/s':>8}")
    for label, (seconds, traps, code) in (
            ("emulated: PIO disk", pio), ("paravirtualized: virtio (Cython)", virtio),
            ("paravirtualized: virtio (Python)", pure), ("passthrough: mapped file", mapped)):
        assert code == 0, label
        print(f"{label:<34} {seconds * 1e3:>8.1f}ms {traps:>9} {traps / (MIB * 1024):>10.3f} "
              f"{MIB / seconds:>8.0f}")

    print()
    TwinTimer.install()
    fast_twin, slow_twin = best(repetitions, lambda: twin_time(False, image),
                                lambda: twin_time(True, image))
    print(f"time inside the virtqueue twin: Cython {fast_twin * 1e3:.1f} ms, "
          f"Python {slow_twin * 1e3:.1f} ms")
    rows = [("virtio vs PIO: fewer traps", pio[1] / virtio[1], ">=", 100),
            ("virtio vs PIO: less time", pio[0] / virtio[0], ">=", 100),
            ("Cython vs Python: the virtqueue work", slow_twin / fast_twin, ">=", 10),
            ("Cython vs Python: the whole run", pure[0] / virtio[0], "", None)]
    host = min(host_pread(image) for _ in range(repetitions * 3))
    rows.append(("virtio vs host pread (throughput)", host / virtio[0], ">=", 0.5))
    if shutil.which("qemu-system-riscv64"):
        q_bench, q_hello, m_bench, m_hello = best(
            repetitions,
            lambda: wall(qemu_command("virtio_bench", image)),
            lambda: wall(qemu_command("hello", image)),
            lambda: wall(minivm_command("virtio_bench", image)),
            lambda: wall(minivm_command("hello", image)))
        qemu_cost, our_cost = max(q_bench - q_hello, 1e-4), max(m_bench - m_hello, 1e-4)
        print(f"marginal wall time of the 16 MiB: QEMU {qemu_cost * 1e3:.1f} ms, "
              f"minivm {our_cost * 1e3:.1f} ms")
        rows.append(("virtio vs QEMU TCG (marginal time)", qemu_cost / our_cost, ">=", 1.0))
    print(f"{'ratio':<36} {'value':>8}  target")
    for label, value, sense, target in rows:
        verdict = "" if target is None else ("ok" if value >= target else "MISSED")
        goal = "" if target is None else f"{sense} {target}x"
        print(f"{label:<36} {value:>7.2f}x  {goal:<8} {verdict}")
    print(f"\nvirtio: {virtio[1]} traps for {ROUNDS * 16} requests in {ROUNDS} notifies "
          f"({virtio[1] / ROUNDS:.1f} traps per batch of 16)")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
