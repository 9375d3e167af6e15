"""`minivm grade`: the labs' autograder, with Gradescope's results.json.

    minivm grade LAB --submission DIR [--output results.json]
    minivm grade LAB --batch DIR_OF_SUBMISSIONS [--jobs N] [--csv scores.csv] [--output-dir DIR]
    minivm grade LAB --export-gradescope autograder.zip
    minivm grade LAB --export-prairielearn OUT
    minivm grade --list

A lab is a folder (labs/NAME/, installed as the package data minivm.labs)
holding lab.json (the submission's files, limits, points per test), tests/
(the visible tests, shipped to students) and hidden/ (graded, not shipped).
Tests are plain functions `def test_x(): ...` found in tests/test_*.py and
hidden/test_*.py; each is worth the points lab.json gives it.

How a test runs (see minivm/grade_runner.py, minivm/labkit.py, minivm/sandbox.py):

    grader --(job; output and verdict pipes)--> fork server --fork--> test process
                  <---------- verdict: one JSON line with the run's token -----'  (lab's test
                                                                                   code, trusted)
                                               requests / plain-data replies  |
                                                                              v
                                                   submission process (the student's module)

Each test gets a fresh private temporary folder with its own copy of the
submission, its own test process (forked from a server that imported
minivm and Unicorn once; in its own session, killed whole at the wall-clock
limit) and its own submission process (memory, CPU and file-size limits,
output capped at 64 KiB).  Guests run with the lab's instruction
budget on the virtual clock, so every run is the same.  The verdict comes
back on a pipe only the test process holds, with a random per-run token,
and the points are the grader's arithmetic on the weights, never a number
a test or a submission reports.

Exit status: 0 when grading worked (whatever the scores); 2 for bad input
(an unknown lab, a missing folder), as one line on stderr; 1 when minivm's
or the lab's own files changed while submissions ran (a submission with the
grader's user id can write them: grade untrusted code in a container, as
Gradescope does, one submission per container).
"""
import ast
import json
import os
import sys
import time

from minivm.errors import MinivmError
from minivm.grading.handout import LAB_FILE, find_lab, lab_names
HIDDEN_WEIGHTS = "weights.json"      # in hidden/: the hidden tests' points
TEST_FOLDERS = (("tests", "visible"), ("hidden", "after_published"))
DEFAULTS = {"timeout": 20.0, "max_insns": 50_000_000, "memory_mb": 1024,
            "test_memory_mb": 8192}
OUTPUT_LIMIT = 64 * 1024        # bytes of a test process's own stdout/stderr kept
SUBMISSION_MAX_BYTES = 20 << 20
SUBMISSION_MAX_FILES = 500
SKIPPED_NAMES = {".git", "__pycache__", "__MACOSX", ".DS_Store", ".minivm-cache",
                 "results.json"}


class GradeError(MinivmError):
    """Bad input: printed as one line, exit status 2."""


# -- labs ----------------------------------------------------------------------------------------


class Test:
    def __init__(self, name, file, visibility, weight, doc):
        self.name, self.file, self.visibility = name, file, visibility
        self.weight, self.doc = weight, doc


class Lab:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path.rstrip(os.sep))
        try:
            with open(os.path.join(path, LAB_FILE)) as stream:
                config = json.load(stream)
        except (OSError, ValueError) as error:
            raise GradeError(f"{self.name}: cannot read {LAB_FILE}: {error}")
        self.config = config
        self.title = config.get("title", self.name)
        self.files = list(config.get("files", []))
        self.firmware = list(config.get("firmware", []))
        self.settings = {key: config.get(key, value) for key, value in DEFAULTS.items()}
        self.tests = []
        for folder, visibility in TEST_FOLDERS:
            if not os.path.isdir(os.path.join(path, folder)):
                continue            # a handout has no hidden/
            weights_file, weights = self._weights(folder, config)
            found = discover(os.path.join(path, folder))
            for file, name, doc in found:
                if name not in weights:
                    raise GradeError(f"{self.name}: test {name} ({folder}/"
                                     f"{os.path.basename(file)}) has no weight in "
                                     f"{weights_file}")
                self.tests.append(Test(name, file, visibility, float(weights[name]), doc))
            unknown = sorted(set(weights) - {name for _, name, _ in found})
            if unknown:
                raise GradeError(f"{self.name}: {weights_file} weighs tests that do not "
                                 f"exist in {folder}/: {', '.join(unknown)}")
        names = [test.name for test in self.tests]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise GradeError(f"{self.name}: test names used twice: {', '.join(duplicates)}")
        self.max_score = sum(test.weight for test in self.tests)

    def _weights(self, folder, config):
        """(file, {test: points}) for the tests in `folder`: lab.json weighs the
        visible tests, hidden/weights.json the hidden ones (lab.json is shipped
        to students and names no hidden test)."""
        if folder == "tests":
            return LAB_FILE, config.get("weights", {})
        weights_file = f"{folder}/{HIDDEN_WEIGHTS}"
        try:
            with open(os.path.join(self.path, folder, HIDDEN_WEIGHTS)) as stream:
                return weights_file, json.load(stream).get("weights", {})
        except (OSError, ValueError, AttributeError) as error:
            raise GradeError(f"{self.name}: cannot read {weights_file}: {error}")

    def search_path(self):
        return [os.path.join(self.path, folder) for folder, _ in TEST_FOLDERS]

    def firmware_paths(self):
        from minivm.cli import firmware_path
        paths = []
        for image in self.firmware:
            local = os.path.join(self.path, image)
            paths.append(local if os.path.isfile(local) else firmware_path(image))
        return [path for path in paths if os.path.isfile(path)]


def discover(folder):
    """(file, name, first docstring line) of every test function, in file order,
    read with ast: nothing of the lab is imported in the grader."""
    if not os.path.isdir(folder):
        return []
    found = []
    for entry in sorted(os.listdir(folder)):
        if not (entry.startswith("test_") and entry.endswith(".py")):
            continue
        file = os.path.join(folder, entry)
        with open(file, encoding="utf-8") as stream:
            tree = ast.parse(stream.read(), file)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                found.append((file, node.name, doc[0] if doc else ""))
    return found


# -- one test of one submission -------------------------------------------------------------------


class Settings:
    def __init__(self, lab, timeout=None, cache_dir=None):
        self.zygote = None                   # a Zygote, while grading
        self.timeout = float(timeout or lab.settings["timeout"])
        self.max_insns = int(lab.settings["max_insns"])
        self.memory_mb = int(lab.settings["memory_mb"])
        self.test_memory_mb = int(lab.settings["test_memory_mb"])
        self.cache_dir = cache_dir


def locate_files(submission, lab):
    """The folder inside a submission that holds the lab's files: the
    submission itself, or the one subfolder that does (students zip folders)."""
    if not lab.files or all(os.path.exists(os.path.join(submission, f)) for f in lab.files):
        return submission, ""
    first = lab.files[0]
    for root, folders, files in os.walk(submission):
        folders[:] = sorted(f for f in folders if f not in SKIPPED_NAMES and not f.startswith("."))
        if os.path.relpath(root, submission).count(os.sep) >= 3:
            folders[:] = []
        if first in files:
            return root, os.path.relpath(root, submission)
    return submission, ""


def copy_submission(source, destination):
    """Copy regular files only (no links, devices or caches), within limits."""
    import shutil
    total = count = 0
    os.makedirs(destination)
    for root, folders, files in os.walk(source):
        folders[:] = [f for f in folders if f not in SKIPPED_NAMES
                      and not os.path.islink(os.path.join(root, f))]
        target = os.path.join(destination, os.path.relpath(root, source))
        os.makedirs(target, exist_ok=True)
        for name in files:
            path = os.path.join(root, name)
            if name in SKIPPED_NAMES or os.path.islink(path) or not os.path.isfile(path):
                continue
            count += 1
            total += os.path.getsize(path)
            if count > SUBMISSION_MAX_FILES or total > SUBMISSION_MAX_BYTES:
                raise GradeError(f"the submission is too large (more than "
                                 f"{SUBMISSION_MAX_FILES} files or "
                                 f"{SUBMISSION_MAX_BYTES >> 20} MiB)")
            shutil.copyfile(path, os.path.join(target, name))


def _remove_tree(path):
    import shutil
    import stat

    def retry(function, name, _info):
        try:
            os.chmod(os.path.dirname(name), stat.S_IRWXU)
            os.chmod(name, stat.S_IRWXU)
            function(name)
        except OSError:
            pass
    shutil.rmtree(path, onerror=retry)


def test_environment(settings):
    from minivm.labkit import python_path
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": python_path(),
           "HOME": os.environ.get("HOME", "/"), "PYTHONIOENCODING": "utf-8"}
    env["MINIVM_CACHE_DIR"] = settings.cache_dir or "off"
    for name in ("MINIVM_PURE", "TMPDIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class Zygote:
    """The grader's fork server (grade_runner.zygote): one process that has
    imported minivm and Unicorn once and forks a fresh test process per test,
    which saves two thirds of each test's start-up.  If it cannot be started
    or dies (a submission may kill it), tests are started the plain way."""

    def __init__(self, settings):
        import threading
        self.settings = settings
        self.lock = threading.Lock()
        self.process = None
        self.control = None
        self.broken = False

    def _start(self):
        import socket
        import subprocess
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-S", "-m", "minivm.grade_runner", "--zygote",
                 str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                env=test_environment(self.settings), start_new_session=True)
        finally:
            theirs.close()
        self.control = ours
        self.control.settimeout(30)

    def spawn(self, job, output_fd, result_fd):
        """Fork a test process for `job`; its pid, or None to start it the plain way."""
        import socket
        import struct
        message = json.dumps(job).encode()
        with self.lock:
            for _ in range(2):
                if self.broken:
                    return None
                try:
                    if self.process is None or self.process.poll() is not None:
                        self._stop()
                        self._start()
                    socket.send_fds(self.control, [message], [output_fd, result_fd])
                    reply = self.control.recv(16)
                    if len(reply) == 4 and struct.unpack("<i", reply)[0] > 0:
                        return struct.unpack("<i", reply)[0]
                except OSError:
                    pass
                self._stop()
            self.broken = True
            return None

    def _stop(self):
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self.process = None

    def close(self):
        with self.lock:
            self._stop()


def run_test(lab, test, submission, settings):
    """Run one test of one submission in its own processes; a result dict."""
    import secrets
    import signal
    import subprocess
    import tempfile

    started = time.monotonic()
    result = {"name": test.name, "max_score": test.weight, "visibility": test.visibility,
              "doc": test.doc, "score": 0.0, "status": "failed", "message": "",
              "submission_output": ""}
    private = tempfile.mkdtemp(prefix="minivm-grade-")
    try:
        copy = os.path.join(private, "submission")
        try:
            copy_submission(submission, copy)
        except (GradeError, OSError) as error:
            result["message"] = f"could not copy the submission: {error}"
            return result
        scratch = os.path.join(private, "scratch")
        os.makedirs(scratch)
        token = secrets.token_hex(16)
        deadline = time.monotonic() + settings.timeout
        job = {"token": token, "test": test.name, "test_file": test.file,
               "path": lab.search_path(), "submission": copy, "scratch": scratch,
               "cwd": private, "deadline": deadline, "max_insns": settings.max_insns,
               "memory_mb": settings.test_memory_mb,
               "submission_memory_mb": settings.memory_mb}
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        process = None
        pid = settings.zygote.spawn(job, output_w, result_w) if settings.zygote else None
        try:
            if pid is None:
                process = subprocess.Popen(
                    [sys.executable, "-S", "-m", "minivm.grade_runner", str(result_w)],
                    stdin=subprocess.PIPE, stdout=output_w, stderr=output_w,
                    pass_fds=(result_w,), cwd=private, env=test_environment(settings),
                    start_new_session=True)
                pid = process.pid
        finally:
            os.close(result_w)
            os.close(output_w)
        if process is not None:
            try:
                process.stdin.write(json.dumps(job).encode())
                process.stdin.close()
            except OSError:
                pass
        verdict, output, why = _collect(pid, output_r, result_r, deadline)
        try:
            os.killpg(pid, signal.SIGKILL)          # anything it left behind
        except OSError:
            pass
        returncode = process.wait() if process is not None else None
        _judge(result, verdict, token, test, output, why, returncode, settings)
        return result
    finally:
        result["seconds"] = round(time.monotonic() - started, 3)
        _remove_tree(private)


def _collect(pid, output_r, result_r, deadline):
    """(verdict bytes, the test process's own output, why it was stopped or None),
    reading both pipes until they close or the deadline passes."""
    import select
    import signal
    verdict, output = bytearray(), bytearray()
    open_fds = {result_r, output_r}
    poller = select.poll()
    for fd in open_fds:
        poller.register(fd, select.POLLIN)
    why = None
    try:
        while open_fds and why is None:
            left = deadline - time.monotonic()
            if left <= 0:
                why = "timeout"
                break
            for fd, _ in poller.poll(max(1, int(left * 1000))):
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                elif fd == result_r:
                    if len(verdict) < (1 << 20):
                        verdict += chunk
                else:
                    output += chunk
                    if len(output) > OUTPUT_LIMIT:
                        why = "output"
                        break
        if why:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
    finally:
        os.close(result_r)
        os.close(output_r)
    return bytes(verdict), bytes(output[:OUTPUT_LIMIT]), why


def _judge(result, verdict, token, test, output, why, returncode, settings):
    if why == "timeout":
        result["message"] = (f"timed out: the test did not finish within "
                             f"{settings.timeout:g} s (an infinite loop, or very slow code?)")
        return
    if why == "output":
        result["message"] = "the test printed more than 64 KiB and was stopped"
        return
    # The runner writes exactly one line, with this run's token, and nothing else
    # may write to that pipe: anything more means someone else did.
    lines = verdict.decode(errors="replace").splitlines()
    record = None
    if len(lines) > 1:
        result["message"] = ("the test's result channel carried more than its one result "
                             "(written to from outside the test?): the test is not counted")
        return
    if lines:
        try:
            candidate = json.loads(lines[0])
        except ValueError:
            candidate = None
        if isinstance(candidate, dict) and candidate.get("token") == token \
                and candidate.get("test") == test.name:
            record = candidate
    if record is None:
        tail = output.decode(errors="replace").strip()[-1500:]
        how = ("" if returncode is None else f" (exit status {returncode})" if returncode >= 0
               else f" (signal {-returncode})")
        result["message"] = (f"the test's process ended without a result{how}"
                             + (f":\n{tail}" if tail else ""))
        return
    status = record.get("status")
    fraction = record.get("fraction", 0.0)
    if status not in ("passed", "partial", "failed", "error") \
            or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        result["message"] = "the test's process sent a malformed result"
        return
    if status == "passed":
        fraction = 1.0
    elif status in ("failed", "error"):
        fraction = 0.0
    result["status"] = "passed" if fraction >= 1 else "failed"
    result["score"] = round(test.weight * fraction, 4)
    result["message"] = str(record.get("message", ""))
    result["submission_output"] = str(record.get("submission_output", ""))


# -- a whole submission -----------------------------------------------------------------------------


def results_json(lab, results, seconds, notes=()):
    """Gradescope's results.json for one submission."""
    tests = []
    for number, result in enumerate(results, 1):
        lines = []
        if result["doc"]:
            lines.append(result["doc"])
        if result["status"] == "passed":
            lines.append("passed")
        elif result["score"] > 0:
            lines.append(f"partly passed ({result['score']:g} of {result['max_score']:g} points)")
        if result["message"]:
            lines.append(result["message"])
        if result["submission_output"]:
            lines.append(result["submission_output"].rstrip())
        tests.append({"name": result["name"], "number": str(number),
                      "score": result["score"], "max_score": result["max_score"],
                      "status": result["status"], "output": "\n".join(lines),
                      "visibility": result["visibility"]})
    score = round(sum(result["score"] for result in results), 4)
    passed = sum(result["status"] == "passed" for result in results)
    summary = [f"{lab.title}: {score:g} of {lab.max_score:g} points; "
               f"{passed} of {len(results)} tests passed."]
    summary.extend(notes)
    return {"score": score, "execution_time": round(seconds, 2), "output": "\n".join(summary),
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def prepare_submission(lab, submission):
    """(folder to grade, notes for the student)."""
    folder, found_in = locate_files(submission, lab)
    notes = []
    if found_in:
        notes.append(f"Graded the files in {found_in}/ of your submission.")
    missing = [f for f in lab.files if not os.path.exists(os.path.join(folder, f))]
    if missing:
        notes.append(f"Missing from your submission: {', '.join(missing)}.")
    return folder, notes


def grade_submission(lab, submission, settings, jobs=1):
    """Grade one submission (tests in parallel, `jobs` at a time): results.json as a dict."""
    from concurrent.futures import ThreadPoolExecutor
    started = time.monotonic()
    folder, notes = prepare_submission(lab, submission)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda test: run_test(lab, test, folder, settings), lab.tests))
    return results_json(lab, results, time.monotonic() - started, notes)


def write_json(path, data):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w") as stream:
        json.dump(data, stream, indent=2)
        stream.write("\n")
    os.replace(temporary, path)


# -- integrity of the grader's own files ----------------------------------------------------------


def fingerprint(lab, settings):
    """{path: SHA-256} of minivm's code, the lab's files, its firmware and the ELF
    cache entries made for it before any submission ran."""
    import hashlib
    import minivm
    roots = [os.path.dirname(os.path.abspath(minivm.__file__)), lab.path]
    files = []
    for root in roots:
        for folder, folders, names in os.walk(root):
            folders[:] = sorted(f for f in folders if f != "__pycache__" and f != "labs")
            for name in sorted(names):
                if name.endswith((".py", ".so", ".pyx", ".json", ".elf", ".md")):
                    files.append(os.path.join(folder, name))
    files.extend(lab.firmware_paths())
    if settings.cache_dir and os.path.isdir(settings.cache_dir):
        files.extend(os.path.join(settings.cache_dir, name)
                     for name in sorted(os.listdir(settings.cache_dir)))
    digests = {}
    for path in files:
        try:
            with open(path, "rb") as stream:
                digests[path] = hashlib.sha256(stream.read()).hexdigest()
        except OSError:
            digests[path] = None
    return digests


def changed_files(before, after):
    return sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))


def warm_cache(lab, settings):
    """Parse the lab's firmware into a private ELF cache before any submission
    runs, so tests skip pyelftools and the entries are covered by the fingerprint."""
    import tempfile
    settings.cache_dir = tempfile.mkdtemp(prefix="minivm-grade-cache-")
    saved = os.environ.get("MINIVM_CACHE_DIR")
    os.environ["MINIVM_CACHE_DIR"] = settings.cache_dir
    try:
        from minivm.loader import read_program
        for path in lab.firmware_paths():
            try:
                read_program(path)
            except Exception:
                pass
    finally:
        if saved is None:
            os.environ.pop("MINIVM_CACHE_DIR", None)
        else:
            os.environ["MINIVM_CACHE_DIR"] = saved


# -- batches ----------------------------------------------------------------------------------------


class Progress:
    """A text progress bar on stderr (a line per tenth when stderr is not a terminal)."""

    def __init__(self, total, stream=None, width=30):
        self.total, self.done, self.width = total, 0, width
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.shown_tenth = -1
        self.show()

    def step(self, count=1):
        self.done += count
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


def grade_batch(lab, batch, settings, jobs, output_dir=None, csv_path=None, stream=None):
    """Grade every subfolder of `batch`; returns (summary text, {name: results})."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    stream = stream or sys.stderr
    names = sorted(name for name in os.listdir(batch)
                   if os.path.isdir(os.path.join(batch, name)) and not name.startswith("."))
    started = time.monotonic()
    progress = Progress(len(names), stream)
    lock = threading.Lock()
    pending = {name: len(lab.tests) for name in names}
    partial = {name: [None] * len(lab.tests) for name in names}
    prepared = {name: prepare_submission(lab, os.path.join(batch, name)) for name in names}
    clocks = {name: None for name in names}
    everything = {}

    def finished(name):
        folder, notes = prepared[name]
        results = results_json(lab, partial[name], time.monotonic() - clocks[name], notes)
        target = (os.path.join(output_dir, name, "results.json") if output_dir
                  else os.path.join(batch, name, "results.json"))
        write_json(target, results)
        everything[name] = results
        progress.step()

    def work(name, index):
        with lock:
            if clocks[name] is None:
                clocks[name] = time.monotonic()
        result = run_test(lab, lab.tests[index], prepared[name][0], settings)
        with lock:
            partial[name][index] = result
            pending[name] -= 1
            if pending[name] == 0:
                finished(name)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(work, name, index)
                   for name in names for index in range(len(lab.tests))]
        for future in futures:
            future.result()
    if not lab.tests:
        for name in names:
            clocks[name] = time.monotonic()
            finished(name)
    progress.close()
    if csv_path:
        write_csv(csv_path, lab, names, everything)
    return summary(lab, names, everything, time.monotonic() - started, jobs), everything


def write_csv(path, lab, names, everything):
    import csv
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["submission", "score", "max_score"] + [t.name for t in lab.tests])
        for name in names:
            results = everything[name]
            scores = {test["name"]: test["score"] for test in results["tests"]}
            writer.writerow([name, f"{results['score']:g}", f"{lab.max_score:g}"]
                            + [f"{scores.get(t.name, 0):g}" for t in lab.tests])


def summary(lab, names, everything, seconds, jobs):
    scores = [everything[name]["score"] for name in names]
    lines = [f"Graded {len(names)} submissions of {lab.name} in {seconds:.1f} s "
             f"({jobs} jobs).",
             f"Scores (out of {lab.max_score:g}):", histogram(scores, lab.max_score)]
    if scores:
        mean = sum(scores) / len(scores)
        ordered = sorted(scores)
        median = ordered[len(ordered) // 2]
        lines.append(f"  mean {mean:.2f}, median {median:g}, "
                     f"full marks {sum(s >= lab.max_score for s in scores)}")
    failures = []
    for test in lab.tests:
        failed = sum(1 for name in names for result in everything[name]["tests"]
                     if result["name"] == test.name and result["score"] < result["max_score"])
        failures.append((failed, test.name))
    lines.append("Failures by test:")
    width = max((len(t.name) for t in lab.tests), default=10)
    for failed, name in sorted(failures, key=lambda item: (-item[0], item[1])):
        lines.append(f"  {name:<{width}}  {failed} of {len(names)}")
    return "\n".join(lines)


# -- the command line ---------------------------------------------------------------------------


def add_arguments(parser):
    """Fill the `minivm grade` subparser."""
    parser.add_argument("lab", nargs="?",
                        help="the lab's name (a folder of labs/), or a path to a lab folder")
    parser.add_argument("--submission", metavar="DIR", help="grade the submission in DIR")
    parser.add_argument("--output", metavar="FILE",
                        help="where results.json goes (default: ./results.json)")
    parser.add_argument("--batch", metavar="DIR",
                        help="grade every subfolder of DIR (one submission each)")
    parser.add_argument("--jobs", "-j", type=_positive_int, metavar="N",
                        help="tests run at a time (default: the number of CPUs)")
    parser.add_argument("--csv", metavar="FILE", help="with --batch: scores as CSV")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="with --batch: write NAME/results.json here instead of into "
                             "each submission's folder")
    parser.add_argument("--export-gradescope", metavar="ZIP",
                        help="write Gradescope's autograder zip for LAB")
    parser.add_argument("--export-prairielearn", metavar="OUT",
                        help="write a PrairieLearn external-grader question for LAB "
                             "(a folder, or a .zip)")
    parser.add_argument("--timeout", type=_positive_float, metavar="SECONDS",
                        help="wall-clock limit per test (default: the lab's)")
    parser.add_argument("--list", action="store_true", help="list the labs and exit")
    return parser


def _positive_int(text):
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _positive_float(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def run(args):
    """`minivm grade`; returns the exit status."""
    try:
        return _run(args)
    except MinivmError as error:
        print(f"minivm: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:         # `minivm grade ... | head`: the results are written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("minivm: interrupted", file=sys.stderr)
        return 130


def _run(args):
    if args.list:
        for name in lab_names():
            print(name)
        return 0
    if not args.lab:
        raise GradeError("grade: which lab? (minivm grade --list shows them)")
    lab = Lab(find_lab(args.lab))
    exports = (args.export_gradescope, args.export_prairielearn)
    modes = [m for m in (args.submission, args.batch, *exports) if m]
    if len(modes) != 1:
        raise GradeError("grade: give exactly one of --submission DIR, --batch DIR, "
                         "--export-gradescope ZIP, --export-prairielearn OUT")
    if any(exports):
        from minivm.grading import export
        write, target = ((export.export_gradescope, args.export_gradescope)
                         if args.export_gradescope
                         else (export.export_prairielearn, args.export_prairielearn))
        count = write(lab.path, target)
        print(f"wrote {target}: {count} files (minivm's wheel, the scripts, "
              f"lab {lab.name} without solution/)")
        return 0
    jobs = args.jobs or min(8, os.cpu_count() or 1)
    settings = Settings(lab, args.timeout)
    if args.submission:
        if not os.path.isdir(args.submission):
            raise GradeError(f"{args.submission}: no such submission folder")
        output = args.output or "results.json"
        _check_writable(output)
    else:
        if not os.path.isdir(args.batch):
            raise GradeError(f"{args.batch}: no such folder of submissions")
        if args.output:
            raise GradeError("grade: --output is for one submission; use --output-dir "
                             "with --batch")
    warm_cache(lab, settings)
    settings.zygote = Zygote(settings)
    try:
        before = fingerprint(lab, settings)
        if args.submission:
            results = grade_submission(lab, os.path.abspath(args.submission), settings, jobs)
            tampered = changed_files(before, fingerprint(lab, settings))
            if tampered:
                results = _tampered(lab, results)
            write_json(output, results)
            print(results["output"].splitlines()[0])
            for test in results["tests"]:
                mark = "ok  " if test["status"] == "passed" else "FAIL"
                print(f"  {mark} {test['name']:<40} {test['score']:g}/{test['max_score']:g}")
            print(f"results: {output}")
        else:
            text, _ = grade_batch(lab, os.path.abspath(args.batch), settings, jobs,
                                  args.output_dir, args.csv)
            tampered = changed_files(before, fingerprint(lab, settings))
            print(text)
        if tampered:
            shown = ", ".join(tampered[:4]) + (f" and {len(tampered) - 4} more"
                                               if len(tampered) > 4 else "")
            print(f"minivm: minivm's or the lab's files changed while submissions ran "
                  f"(a submission wrote to them?): {shown}; these results cannot be trusted",
                  file=sys.stderr)
            return 1
        return 0
    finally:
        settings.zygote.close()
        _remove_tree(settings.cache_dir)


def _tampered(lab, results):
    results = dict(results)
    results["score"] = 0
    results["output"] = ("Grading was stopped: files of the grader changed while this "
                         "submission ran. Please tell the course staff.\n" + results["output"])
    results["tests"] = [dict(test, score=0, status="failed") for test in results["tests"]]
    return results


def _check_writable(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise GradeError(f"{path}: no such folder {folder}")


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog="minivm grade",
                                     description="Grade lab submissions (Gradescope results).")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
