"""What grading costs: one submission per lab, and a batch of 100 on 2 cores.

    python benchmarks/bench_grade.py [--quick] [--lab NAME] [--all-labs] [--batch-size N] [--jobs N]

Measured as a course uses it, through the command (`python -m minivm.grading`,
interpreter start-up included):

  one submission   each lab's solution and starter, --jobs 2 (two judges share
                   its tests); best of N runs; target: <= 3 s wall
  a batch          N submissions (solutions and starters, alternately) of one
                   lab, or of every lab with --all-labs, --jobs 2 (one judge per
                   submission, two at a time), with --csv; target: 100 <= 2 min

A submission costs a judge (pytest, the lab's tests, minivm and Unicorn) and,
per labkit.load, a fork into the jail for the student's module
(minivm/grading/spawner.py, jail.py: a user id, namespaces, cgroups).  Printed, never asserted: this machine is
shared and noisy (the load average is printed with the figures), and whether
the isolation was complete is printed too.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABS = ["trap-and-emulate", "emulated-disk", "paravirtualized-disk", "passthrough-and-costs"]
SINGLE_TARGET, BATCH_TARGET = 3.0, 120.0
ISOLATION = set()           # "complete", or the grader's line naming what was missing


def lab_folder(lab):
    """The instructor's lab (its hidden tests too), not the installed one."""
    return os.path.join(ROOT, "labs", lab)


def grade(*args):
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "minivm.grading", *map(str, args)],
                            capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"minivm grade {' '.join(map(str, args))} failed:\n{result.stderr}")
    ISOLATION.update(result.stderr.splitlines()[:1] if "grading without" in result.stderr
                     else ["complete"])
    return seconds


def load():
    return "load average " + ", ".join(f"{value:.1f}" for value in os.getloadavg())


def single(lab, work, repetitions, jobs):
    rows = []
    for kind in ("solution", "starter"):
        output = os.path.join(work, f"{lab}-{kind}.json")
        times = [grade(lab_folder(lab), "--submission", os.path.join(lab_folder(lab), kind),
                       "--output", output, "--jobs", jobs) for _ in range(repetitions)]
        with open(output) as stream:
            results = json.load(stream)
        rows.append((kind, min(times), results["score"], len(results["tests"])))
    return rows


def batch(lab, work, size, jobs):
    folder = os.path.join(work, f"batch-{lab}")
    os.makedirs(folder)
    for number in range(size):
        kind = "solution" if number % 2 == 0 else "starter"
        shutil.copytree(os.path.join(lab_folder(lab), kind),
                        os.path.join(folder, f"student{number:03d}"))
    csv = os.path.join(work, f"{lab}.csv")
    seconds = grade(lab_folder(lab), "--batch", folder, "--jobs", jobs, "--csv", csv)
    with open(csv) as stream:
        graded = sum(1 for _ in stream) - 1
    return seconds, graded


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one repetition, a batch of 20")
    parser.add_argument("--lab", default="trap-and-emulate", choices=LABS,
                        help="the lab of the batch (default: trap-and-emulate)")
    parser.add_argument("--all-labs", action="store_true", help="a batch of every lab")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--jobs", default="2")
    args = parser.parse_args()
    repetitions = 1 if args.quick else 3
    size = args.batch_size or (20 if args.quick else 100)
    work = tempfile.mkdtemp(prefix="bench-grade-")
    try:
        print(f"minivm grade, {os.cpu_count()} CPUs, --jobs {args.jobs}; {load()}")
        print(f"\none submission (best of {repetitions}; target <= {SINGLE_TARGET:g} s wall)")
        print(f"  {'lab':<24} {'submission':<10} {'wall':>7} {'tests':>6} {'per test':>9} "
              f"{'score':>6}")
        for lab in LABS:
            for kind, seconds, score, tests in single(lab, work, repetitions, args.jobs):
                mark = "ok" if seconds <= SINGLE_TARGET else "OVER"
                print(f"  {lab:<24} {kind:<10} {seconds:6.2f}s {tests:>6} "
                      f"{seconds / tests * 1000:7.0f}ms {score:>6g}  {mark}")
        target = BATCH_TARGET * size / 100
        print(f"\na batch of {size} submissions (half solutions, half starters; "
              f"target <= {target:g} s)")
        for lab in (LABS if args.all_labs else [args.lab]):
            seconds, graded = batch(lab, work, size, args.jobs)
            mark = "ok" if seconds <= target else "OVER"
            print(f"  {lab:<24} {seconds:7.1f} s for {graded} submissions "
                  f"({seconds / graded:.2f} s each; 100 would take {seconds * 100 / graded:.0f} s)"
                  f"  {mark}")
        print(f"\nisolation: {'; '.join(sorted(ISOLATION))}")
        print(f"({load()})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
