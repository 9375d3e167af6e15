"""Grading: judges in jails, results.json, batches.

    grader (root) --pipe: one JSON line per test--  judge (root: pytest + plugin.py,
                                                      the lab's tests)
                                                        |  labkit: plain data only
                                                        v
                                                     submission processes (the slot's
                                                     jail: minivm/grading/jail.py)

The grader makes one jail per parallel slot, copies each submission once into
a folder only root can read, and runs judges: one per submission in a batch,
or one per share of the tests for a single submission (--jobs).  A judge that
does not finish (it ran past its time, or died) leaves its submission
"not graded", never with partial or forged scores.  results.json is written
only once no process of the slot's user is left.
"""
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from minivm.errors import MinivmError
from minivm.grading import jail as jails
from minivm.grading.outputs import clean
from minivm.grading.labkit import python_path

SUBMISSION_MAX_BYTES = 20 << 20
SUBMISSION_MAX_FILES = 500          # files and folders
SUBMISSION_MAX_DEPTH = 16           # folders within folders (os.walk recurses per level)
SKIPPED_NAMES = {".git", "__pycache__", "__MACOSX", ".DS_Store", ".minivm-cache", "results.json"}
OUTPUT_TAIL = 1500


def available_cpus():
    """The CPUs this process may use: its affinity, within its cgroup's CPU quota."""
    count = len(os.sched_getaffinity(0))
    for controller, files in (("", ("cpu.max",)), ("cpu", ("cpu.cfs_quota_us",
                                                          "cpu.cfs_period_us"))):
        try:
            folder = jails.cgroup_of(controller)
            quota, period = " ".join(_read(os.path.join(folder, name))
                                     for name in files).split()[:2]
            if quota not in ("max", "-1"):
                count = min(count, max(1, int(quota) // int(period)))
        except (OSError, ValueError, TypeError):
            pass
    return count


def _read(path):
    with open(path) as stream:
        return stream.read()


# -- submissions ---------------------------------------------------------------------------------


def locate_files(submission, lab):
    """The folder inside a submission that holds the lab's files: the
    submission itself, or the one subfolder that does (students zip folders)."""
    if not lab.files or all(os.path.exists(os.path.join(submission, f)) for f in lab.files):
        return submission, ""
    for root, folders, files in os.walk(submission):
        folders[:] = sorted(f for f in folders if f not in SKIPPED_NAMES and not f.startswith("."))
        if os.path.relpath(root, submission).count(os.sep) >= 3:
            folders[:] = []
        if lab.files[0] in files:
            return root, os.path.relpath(root, submission)
    return submission, ""


def copy_submission(source, destination):
    """Copy regular files only (no links, devices or caches), within limits."""
    total = count = 0
    for root, folders, files in os.walk(source):
        folders[:] = [f for f in folders if f not in SKIPPED_NAMES
                      and not os.path.islink(os.path.join(root, f))]
        if folders and os.path.relpath(root, source).count(os.sep) + 1 >= SUBMISSION_MAX_DEPTH:
            raise MinivmError(f"the submission's folders nest more than "
                              f"{SUBMISSION_MAX_DEPTH} deep")
        count += len(folders)
        target = os.path.join(destination, os.path.relpath(root, source))
        os.makedirs(target, exist_ok=True)
        for name in files:
            path = os.path.join(root, name)
            if name in SKIPPED_NAMES or os.path.islink(path) or not os.path.isfile(path):
                continue
            count += 1
            total += os.path.getsize(path)
            if count > SUBMISSION_MAX_FILES or total > SUBMISSION_MAX_BYTES:
                raise MinivmError(f"the submission is too large (more than "
                                  f"{SUBMISSION_MAX_FILES} files or "
                                  f"{SUBMISSION_MAX_BYTES >> 20} MiB)")
            shutil.copyfile(path, os.path.join(target, name))


# -- the grader -----------------------------------------------------------------------------------


class Grader:
    """The jails, the private work folder and the judges of one grading run."""

    def __init__(self, lab, jobs, timeout=None, secrets=()):
        self.lab, self.jobs = lab, jobs
        self.timeout = float(timeout or lab.settings["timeout"])
        self.work = tempfile.mkdtemp(prefix="minivm-grade-")
        os.chmod(self.work, 0o711)          # slots inside are reachable, not listable
        self.private = os.path.join(self.work, "private")
        os.makedirs(self.private, mode=0o700)
        hidden = [lab.path, self.private, *secrets]
        memory, processes = int(lab.settings["memory_mb"]), int(lab.settings["processes"])
        self.jails, self.missing, self.copies = [], [], 0
        self.watchdog = jails.Watchdog([])
        try:
            for _ in range(jobs):
                self.jails.append(jails.make(self.work, memory, processes, hidden))
            jails.harden_judge()            # orphans of a killed judge come to us to be reaped
            for jail in self.jails:
                _, self.missing = jails.probe(jail, [*hidden, f"/proc/{os.getpid()}"])
        except BaseException:
            self.close()
            raise
        self.free = list(self.jails)
        self.lock = threading.Condition()
        self.watchdog = jails.Watchdog(self.jails)

    def close(self):
        self.watchdog.close()
        for jail in self.jails:
            jails.kill_all(jail)
            jails.remove(jail)
        jails.remove_tree(self.work)

    def _slot(self):
        with self.lock:
            while not self.free:
                self.lock.wait()
            return self.free.pop()

    def _release(self, jail):
        with self.lock:
            self.free.append(jail)
            self.lock.notify()

    def copy(self, submission):
        """(private copy of the submission's files, notes for the student)."""
        folder, found_in = locate_files(submission, self.lab)
        with self.lock:
            self.copies += 1
            destination = os.path.join(self.private, f"submission-{self.copies}")
        copy_submission(folder, destination)
        notes = [f"Graded the files in {found_in}/ of your submission."] if found_in else []
        missing = [f for f in self.lab.files if not os.path.exists(os.path.join(folder, f))]
        if missing:
            notes.append(f"Missing from your submission: {', '.join(missing)}.")
        return destination, notes

    def collect(self):
        """Collect the lab's tests with pytest (no submission): checks the weights."""
        empty = os.path.join(self.private, "nothing")
        os.makedirs(empty, exist_ok=True)
        self._check_lab([self.judge(empty, (0, 1), collect_only=True)])

    def _check_lab(self, outcomes):
        """The lab's tests as its judges collected them, checked once against the weights."""
        for records, failure in outcomes:
            errors = [r["lab_error"] for r in records if "lab_error" in r]
            if errors:
                raise MinivmError(f"{self.lab.name}: a test file cannot be loaded: {errors[0]}")
            collected = [r["collected"] for r in records if "collected" in r]
            if not collected:
                raise MinivmError(f"{self.lab.name}: its tests cannot be collected ({failure})")
            if not self.lab.tests:
                self.lab.set_tests(collected[0])

    def judge(self, submission, share, collect_only=False):
        """Run one judge in a free slot on its share (n, of) of the tests:
        (records, why it failed or None)."""
        jail = self._slot()
        try:
            return self._judge(jail, submission, share, collect_only)
        finally:
            self._release(jail)

    def _judge(self, jail, submission, share, collect_only):
        lab = self.lab
        private = tempfile.mkdtemp(dir=self.private)
        reader, writer = os.pipe()
        job = {"fd": writer, "submission": submission, "share": share,
               "timeout": self.timeout, "work": os.path.join(private, "work")}
        os.makedirs(job["work"])
        ini = os.path.join(private, "pytest.ini")
        with open(ini, "w") as stream:
            stream.write("[pytest]\n")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "HOME": private, "PYTHONPATH": python_path(), "PYTHONHASHSEED": "0",
               "PYTHONPYCACHEPREFIX": jails.bytecode_cache("judges"),
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
               "MINIVM_GRADE_JOB": json.dumps(job), "MINIVM_CACHE_DIR": "off",
               "MINIVM_LAB_MAX_INSNS": str(int(lab.settings["max_insns"])),
               "MINIVM_LAB_MEMORY_MB": str(int(lab.settings["memory_mb"]))}
        if self.missing != ["every protection (a jailed process could not start)"]:
            env["MINIVM_GRADE_JAIL"] = json.dumps(jail)
        if "MINIVM_PURE" in os.environ:
            env["MINIVM_PURE"] = os.environ["MINIVM_PURE"]
        command = [sys.executable, "-s", "-P", "-m", "pytest", "-p", "minivm.grading.plugin",
                   "-p", "no:cacheprovider", "-q", "-c", ini, "--rootdir", lab.path,
                   *lab.folders] + (["--collect-only"] if collect_only else [])
        count = len(lab.weights) // share[1] + 1
        deadline = time.monotonic() + 60 + count * (self.timeout + 2)
        with open(os.path.join(private, "output"), "w+b") as output:
            judge = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                     stderr=output, pass_fds=(writer,), cwd=private, env=env,
                                     start_new_session=True,
                                     preexec_fn=lambda: _limit_judge(lab.settings))
            os.close(writer)
            records, why = _read_records(reader, deadline)
            try:
                os.killpg(judge.pid, signal.SIGKILL)
            except OSError:
                pass
            code = judge.wait()
            if not jails.kill_all(jail):
                why = "processes of the submission could not be stopped"
            if why is None and not any(r.get("done") for r in records):
                output.seek(0)
                tail = output.read()[-OUTPUT_TAIL:].decode(errors="replace").strip()
                why = f"the grader's test process ended early (status {code})" + (
                    f": {tail}" if tail else "")
            if why is None and not collect_only:
                why = _missing_records(records, share)
        jails.remove_tree(private)
        return records, why

    # -- one submission, a batch ------------------------------------------------------------

    def grade(self, submission, split=True):
        """Grade one submission: results.json as a dict.  split: its tests shared
        among the slots (one submission); else one judge runs them all (a batch,
        which collects the tests first)."""
        started = time.monotonic()
        try:
            copy, notes = self.copy(submission)
        except (MinivmError, OSError) as error:
            return results_json(self.lab, {}, 0, [], failure=f"could not copy it: {error}")
        shares = self.jobs if split else 1
        outcomes = [None] * shares

        def run(index):
            outcomes[index] = self.judge(copy, (index, shares))
        threads = [threading.Thread(target=run, args=(i,)) for i in range(shares)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._check_lab(outcomes)
        return self._results(outcomes, time.monotonic() - started, notes)

    def _results(self, outcomes, seconds, notes):
        records, failures = {}, []
        for found, why in outcomes:
            records.update((r["test"], r) for r in found if "test" in r)
            if why:
                failures.append(why)
        return results_json(self.lab, records, seconds, notes,
                            failure="; ".join(failures) or None, missing=self.missing)


def _missing_records(records, share):
    """Why a judge that said it was done is not to be believed: a test of its
    share without a record (its hooks failed), or None."""
    collected = next((r["collected"] for r in records if "collected" in r), [])
    expected = [test["name"] for test in collected[share[0]::share[1]]]
    recorded = {r["test"] for r in records if "test" in r}
    missing = [name for name in expected if name not in recorded]
    if missing:
        return f"no result for {len(missing)} test(s): {', '.join(missing[:3])}"
    return None


def _limit_judge(settings):
    import resource
    limit = int(settings["test_memory_mb"]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _read_records(reader, deadline):
    """The judge's JSON lines until it closes its pipe: (records, None or why it was stopped)."""
    data, why = bytearray(), None
    poller = select.poll()
    poller.register(reader, select.POLLIN)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                why = "it ran past its time limit"
                break
            if poller.poll(max(1, int(left * 1000))):
                chunk = os.read(reader, 1 << 16)
                if not chunk:
                    break
                data += chunk
    finally:
        os.close(reader)
    records = []
    for line in data.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, why


# -- results.json -----------------------------------------------------------------------------------


def results_json(lab, records, seconds, notes, failure=None, missing=()):
    """Gradescope's results.json for one submission.  With `failure`, the
    submission is not graded: every test 0 points, and the output says why."""
    tests = []
    for number, test in enumerate(lab.tests, 1):
        record = records.get(test["name"], {}) if not failure else {}
        weight = lab.weights[test["name"]]
        fraction = record.get("fraction", 0.0)
        if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            fraction = 0.0
        score = round(weight * fraction, 4)
        lines = [test["doc"]] if test["doc"] else []
        if record.get("status") == "passed":
            lines.append("passed")
        elif score > 0:
            lines.append(f"partly passed ({score:g} of {weight:g} points)")
        for key in ("message", "output"):
            if record.get(key):
                lines.append(str(record[key]).rstrip())
        tests.append({"name": test["name"], "number": str(number), "score": score,
                      "max_score": weight, "status": "passed" if fraction >= 1 else "failed",
                      "output": "\n".join(lines), "visibility": lab.visibility(test["folder"]),
                      "extra_data": {"kind": record.get("kind", "not graded")}})
    score = round(sum(test["score"] for test in tests), 4)
    passed = sum(test["status"] == "passed" for test in tests)
    if failure:
        summary = [f"{lab.title}: this submission could not be graded ({failure}). "
                   "Please tell the course staff."]
    else:
        summary = [f"{lab.title}: {score:g} of {lab.max_score:g} points; "
                   f"{passed} of {len(tests)} tests passed."]
    summary.extend(notes)
    extra = {"graded": not failure, "missing_protections": list(missing)}
    if failure:
        extra["why_not_graded"] = failure
    return clean({"score": score, "execution_time": round(seconds, 2),
                  "output": "\n".join(summary), "visibility": "visible",
                  "stdout_visibility": "hidden", "tests": tests, "extra_data": extra})
