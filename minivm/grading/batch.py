"""Batches: every subfolder of a folder is a submission; a CSV and a summary."""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from minivm.errors import MinivmError
from minivm.grading import outputs


def entries(batch, output_dir):
    """(submission folders, skipped entries with why) of a batch folder."""
    names, skipped = [], []
    excluded = {os.path.realpath(output_dir)} if output_dir else set()
    for name in sorted(os.listdir(batch)):
        path = os.path.join(batch, name)
        if name.startswith("."):
            continue
        if os.path.realpath(path) in excluded:
            skipped.append((name, "the output folder"))
        elif os.path.islink(path) or not os.path.isdir(path):
            skipped.append((name, "not a folder (unpack zips first)"
                            if name.lower().endswith(".zip") else "not a folder"))
        else:
            names.append(name)
    return names, skipped


def grade_batch(grader, batch, output_dir=None, csv_path=None, stream=None):
    """Grade every subfolder of `batch`: (summary text, {name: results})."""
    stream = stream or sys.stderr
    names, skipped = entries(batch, output_dir)
    started = time.monotonic()
    progress = Progress(len(names), stream)
    everything, unwritten = {}, {}

    def grade(name):
        results = grader.grade(os.path.join(batch, name), split=False)
        target = os.path.join(output_dir or batch, name, "results.json")
        try:
            outputs.write_json_file(target, results)
        except (OSError, MinivmError) as error:
            unwritten[name] = str(error) if isinstance(error, MinivmError) else \
                f"cannot write {target}: {error.strerror}"
        everything[name] = results
        progress.step()

    with ThreadPoolExecutor(max_workers=grader.jobs) as pool:
        for future in [pool.submit(grade, name) for name in names]:
            future.result()
    progress.close()
    if csv_path:
        write_csv(csv_path, grader.lab, names, everything)
    text = summary(grader, names, everything, skipped, time.monotonic() - started)
    for name, why in unwritten.items():
        text += f"\nRESULTS NOT WRITTEN: {outputs.clean_text(name)}: {outputs.clean_text(why)}"
    return text, everything


def write_csv(path, lab, names, everything):
    import csv
    import io
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["submission", "graded", "score", "max_score"] + [t["name"] for t in lab.tests])
    for name in names:
        results = everything[name]
        graded = results["extra_data"]["graded"]
        scores = {test["name"]: test["score"] for test in results["tests"]}
        writer.writerow([outputs.clean_text(name), "yes" if graded else "NOT GRADED",
                         f"{results['score']:g}" if graded else "", f"{lab.max_score:g}"]
                        + [f"{scores.get(t['name'], 0):g}" if graded else "" for t in lab.tests])
    outputs.write(path, text.getvalue())


def summary(grader, names, everything, skipped, seconds):
    lab = grader.lab
    graded = [name for name in names if everything[name]["extra_data"]["graded"]]
    scores = [everything[name]["score"] for name in graded]
    lines = [f"Graded {len(graded)} of {len(names)} submissions of {lab.name} in "
             f"{seconds:.1f} s ({grader.jobs} jobs).",
             f"Scores (out of {lab.max_score:g}):", histogram(scores, lab.max_score)]
    if scores:
        ordered = sorted(scores)
        lines.append(f"  mean {sum(scores) / len(scores):.2f}, median "
                     f"{ordered[len(ordered) // 2]:g}, "
                     f"full marks {sum(s >= lab.max_score for s in scores)}")
    for kind, label in (("timeout", "Timed out (a test)"), ("crash", "Crashed (a test)")):
        hit = [name for name in graded if any(t["extra_data"]["kind"] == kind
                                              for t in everything[name]["tests"])]
        if hit:
            lines.append(f"{label}: {', '.join(map(outputs.clean_text, hit))}")
    for name in names:
        if name not in graded:
            lines.append(f"NOT GRADED: {outputs.clean_text(name)}: "
                         f"{everything[name]['extra_data']['why_not_graded']}")
    for name, why in skipped:
        lines.append(f"Skipped: {outputs.clean_text(name)} ({why})")
    lines.append("Failures by test:")
    width = max((len(t["name"]) for t in lab.tests), default=10)
    failures = [(sum(1 for name in graded for r in everything[name]["tests"]
                     if r["name"] == t["name"] and r["score"] < r["max_score"]), t["name"])
                for t in lab.tests]
    for failed, name in sorted(failures, key=lambda item: (-item[0], item[1])):
        lines.append(f"  {name:<{width}}  {failed} of {len(graded)}")
    return "\n".join(lines)


class Progress:
    """A text progress bar on stderr (a line per tenth when stderr is not a terminal)."""

    def __init__(self, total, stream, width=30):
        self.total, self.done, self.width, self.stream = total, 0, width, stream
        self.started = time.monotonic()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.shown_tenth = -1
        self.show()

    def step(self):
        self.done += 1
        self.show()

    def show(self):
        fraction = self.done / self.total if self.total else 1.0
        tenth = int(fraction * 10)
        if not self.tty and tenth == self.shown_tenth and self.done != self.total:
            return
        self.shown_tenth = tenth
        filled = int(fraction * self.width)
        elapsed = int(time.monotonic() - self.started)
        line = (f"grading [{'#' * filled}{'-' * (self.width - filled)}] "
                f"{self.done}/{self.total} submissions  {elapsed // 60}:{elapsed % 60:02d}")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def histogram(scores, max_score, width=40):
    """Score histogram as text: ten buckets of 10% and one for full marks."""
    buckets = [0] * 11
    for score in scores:
        fraction = score / max_score if max_score else 1.0
        buckets[10 if fraction >= 1 else min(9, int(fraction * 10))] += 1
    biggest = max(buckets) or 1
    lines = []
    for index in range(10, -1, -1):
        label = "100%" if index == 10 else f"{index * 10}-{index * 10 + 9}%"
        bar = "#" * round(buckets[index] * width / biggest)
        lines.append(f"  {label:>7} | {bar:<{width}} {buckets[index]}")
    return "\n".join(lines)
