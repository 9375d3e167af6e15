"""`minivm grade`: the labs and the autograder.

Every lab's solution gets full marks and its starter less; deliberately broken
submissions (an exception, an endless Python loop, a guest that spins, megabytes
of output, 8 GiB of memory, a syntax error, patching the grader)
lose the points of the tests they break and nothing else, in the same batch as
a good one; results.json has Gradescope's fields; batches write one
results.json per submission, a CSV and a summary; outputs go to files, stdout,
devices and FIFOs without replacing them; bad input is one line and status 2.
(Hostile submissions: tests/test_grade_hostile.py; the exports:
tests/test_export.py.)

The grader is called in this process (minivm.grading.cli.main) except where its
exit status and stderr as a command are the point.  Short --timeout values keep
the endless-loop cases quick.
"""
import contextlib
import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs_cross_compiler
from minivm.grading import cli, lab as labs

ROOT = Path(__file__).resolve().parent.parent
LABS = ROOT / "labs"
LAB_NAMES = ["trap-and-emulate", "emulated-disk", "paravirtualized-disk",
             "passthrough-and-costs"]
JOBS = ["--jobs", "2"]

# Gradescope's results.json ("Autograder Specifications", Output format).
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}
TOP_LEVEL = {"score", "execution_time", "output", "output_format", "test_output_format",
             "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
             "leaderboard"}
PER_TEST = {"score", "max_score", "status", "name", "name_format", "number", "output",
            "output_format", "tags", "visibility", "extra_data"}


def number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_gradescope(results, lab):
    """results.json as Gradescope documents it, and as the lab weighs it."""
    json.dumps(results, allow_nan=False)              # plain JSON: no NaN or Infinity
    assert set(results) <= TOP_LEVEL, set(results) - TOP_LEVEL
    assert number(results["score"])
    assert number(results["execution_time"]) and results["execution_time"] >= 0
    assert isinstance(results["output"], str)
    assert results.get("visibility", "visible") in VISIBILITY
    assert results.get("stdout_visibility", "hidden") in VISIBILITY
    tests = results["tests"]
    assert isinstance(tests, list) and tests
    points = weights(lab)
    assert [t["name"] for t in tests] == list(points)
    for test in tests:
        assert set(test) <= PER_TEST, set(test) - PER_TEST
        assert {"name", "score", "max_score", "output", "visibility"} <= set(test)
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
        assert number(test["score"]) and number(test["max_score"])
        assert 0 <= test["score"] <= test["max_score"] == points[test["name"]]
        assert test.get("status", "passed") in ("passed", "failed")
        assert isinstance(test.get("number", ""), str)
        hidden = (LABS / lab / "hidden").is_dir() and any(
            f"def {test['name']}(" in path.read_text()
            for path in (LABS / lab / "hidden").glob("test_*.py"))
        assert test["visibility"] == ("after_published" if hidden else "visible")
    assert abs(sum(t["score"] for t in tests) - results["score"]) < 1e-6


def run_grader(*args):
    """(exit status, stdout, stderr) of `minivm grade ARGS`, in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(arg) for arg in args])
    return status, out.getvalue(), err.getvalue()


def grade_one(lab, submission, tmp_path, *extra):
    output = tmp_path / f"results-{Path(submission).name}.json"
    status, out, err = run_grader(LABS / lab, "--submission", submission, "--output", output,
                                  *JOBS, *extra)
    assert status == 0, err
    results = json.loads(output.read_text())
    check_gradescope(results, lab)
    return results


def scores(results):
    return {test["name"]: test["score"] for test in results["tests"]}


def weights(lab):
    """{test: points} of the instructor's lab: lab.json weighs the visible tests,
    hidden/weights.json the hidden ones."""
    visible = json.loads((LABS / lab / "lab.json").read_text())["weights"]
    hidden = json.loads((LABS / lab / "hidden" / "weights.json").read_text())["weights"]
    return {**visible, **hidden}


def max_score(lab):
    return sum(weights(lab).values())


def variant(tmp_path, lab, name, replacements=(), files=None, prefix=""):
    """A copy of lab's solution with some text replaced, in tmp_path/name."""
    folder = tmp_path / name
    shutil.copytree(LABS / lab / "solution", folder)
    for file, old, new in replacements:
        path = folder / file
        text = path.read_text()
        assert old in text, f"{old!r} not in {file}"
        path.write_text(text.replace(old, new))
    for file, text in (files or {}).items():
        (folder / file).write_text(text)
    if prefix:
        for path in folder.glob("*.py"):
            path.write_text(prefix + path.read_text())
    return folder


# -- the labs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lab", LAB_NAMES)
def test_solution_gets_full_marks_and_starter_less(lab, tmp_path):
    solution = grade_one(lab, LABS / lab / "solution", tmp_path)
    failed = [t["name"] + ": " + t["output"] for t in solution["tests"]
              if t["status"] != "passed"]
    assert solution["score"] == max_score(lab), failed
    starter = grade_one(lab, LABS / lab / "starter", tmp_path)
    assert starter["score"] < max_score(lab) / 4
    assert any(t["status"] == "failed" and t["output"] for t in starter["tests"])


def test_every_lab_has_its_parts():
    assert sorted(labs.lab_names()) == sorted(LAB_NAMES)
    for name in LAB_NAMES:
        folder = LABS / name
        for part in ("README.md", "lab.json", "starter", "solution", "tests", "hidden"):
            assert (folder / part).exists(), f"{name}/{part}"
        lab = labs.Lab(str(folder))
        for file in lab.files:
            assert (folder / "starter" / file).is_file() and (folder / "solution" / file).is_file()


@needs_cross_compiler
def test_lab_firmware_is_current(tmp_path):
    """The committed hashdev.elf is what its Makefile builds (builds are reproducible)."""
    folder = LABS / "trap-and-emulate" / "firmware"
    built = tmp_path / "hashdev.elf"
    subprocess.run(["make", "-s", "-C", folder, f"ELF={built}", f"BUILD={tmp_path / 'build'}"],
                   check=True, capture_output=True)
    assert built.read_bytes() == (folder / "hashdev.elf").read_bytes(), \
        "labs/trap-and-emulate/firmware/hashdev.elf is stale: run make there"


# -- broken submissions -----------------------------------------------------------------------------

VQ = "paravirtualized-disk"
VQ_CHAIN_TESTS = {"test_single_buffer_chain", "test_chain_follows_next", "test_indirect_chain",
                  "test_put_used_and_publish", "test_loop_is_chain_error",
                  "test_index_past_table", "test_buffer_outside_ram", "test_nested_indirect",
                  "test_indirect_with_next", "test_bad_indirect_tables", "test_wraparound",
                  "test_random_rings"}
VQ_PUBLISH_TESTS = {"test_put_used_and_publish", "test_no_interrupt_flag",
                    "test_event_idx_publish", "test_wraparound"}
VQ_NEED_EVENT_TESTS = {"test_need_event", "test_event_idx_publish"}
NEED_EVENT = "    return (new - event - 1) & 0xFFFF < (new - old) & 0xFFFF"
PUBLISH = "        state = self.state\n        self.memory.set_u16(state.used + 2"
CHAIN = "        state = self.state\n        buffers = []"

PATCHER = '''
# A submission that tries to grade itself: it patches the grader and the test
# kit in its own process and prints fake results.
import json as _json
import minivm.grading.grader as _grader
import minivm.grading.labkit as _labkit

_grader.results_json = lambda lab, *args, **kwargs: {"score": 1000, "tests": []}
_labkit.SubmissionError = Exception
_labkit.Submission._request = lambda *args, **kwargs: None
print(_json.dumps({"test": "test_chain_follows_next", "status": "passed", "fraction": 1.0}))
print(_json.dumps({"score": 1000, "tests": []}))
'''


def test_broken_submissions_lose_only_what_they_break(tmp_path):
    """In one batch with a good submission: each broken one loses exactly the tests
    that use what it broke, with a message saying why; the good one is untouched."""
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copytree(LABS / VQ / "solution", batch / "good")
    variant(batch, VQ, "raises", [("virtqueue.py", NEED_EVENT,
                                   "    raise ZeroDivisionError('oops')")])
    variant(batch, VQ, "loops", [("virtqueue.py", NEED_EVENT, "    while True:\n        pass")])
    variant(batch, VQ, "hogs", [("virtqueue.py", NEED_EVENT,
                                 "    hog = bytearray(8 << 30)\n" + NEED_EVENT)])
    variant(batch, VQ, "prints", [("virtqueue.py", PUBLISH,
                                   "        print('x' * 100_000 * 20)\n" + PUBLISH)])
    variant(batch, VQ, "patches", [("virtqueue.py", CHAIN, "        return []\n" + CHAIN)],
            prefix=PATCHER)
    variant(batch, VQ, "syntax", [("virtqueue.py", "def need_event(event, new, old):",
                                   "def need_event(event, new, old)")])
    status, out, err = run_grader(LABS / VQ, "--batch", batch, "--timeout", "10", *JOBS)
    assert status == 0, err
    results = {path.parent.name: json.loads(path.read_text())
               for path in batch.glob("*/results.json")}
    assert sorted(results) == ["good", "hogs", "loops", "patches", "prints", "raises", "syntax"]
    for value in results.values():
        check_gradescope(value, VQ)
    full = max_score(VQ)
    assert results["good"]["score"] == full
    expected_failures = {"raises": VQ_NEED_EVENT_TESTS, "loops": VQ_NEED_EVENT_TESTS,
                         "hogs": VQ_NEED_EVENT_TESTS,
                         "prints": VQ_PUBLISH_TESTS, "patches": VQ_CHAIN_TESTS,
                         "syntax": set(scores(results["good"]))}
    messages = {"raises": "ZeroDivisionError: oops", "loops": "did not return within",
                "hogs": "MemoryError",
                "prints": "printed more than 64 KiB", "patches": "returned []",
                "syntax": "SyntaxError"}
    for name, broken in expected_failures.items():
        got = scores(results[name])
        lost = {test for test, score in got.items() if score < scores(results["good"])[test]}
        assert lost == broken, (name, lost ^ broken)
        for test in results[name]["tests"]:
            if test["name"] in broken and test["name"] != "test_random_rings":
                assert messages[name] in test["output"], (name, test["name"], test["output"])
    # The patcher's fake output reached its own results only as text it printed.
    assert results["patches"]["score"] == full - sum(
        weights(VQ)[t] for t in VQ_CHAIN_TESTS)


def test_a_guest_that_spins_and_a_device_that_raises(tmp_path):
    """Batch mode on 3 submissions: a device whose VERSION makes the guest spin (stopped
    by the instruction budget), a device that raises mid-run, and a good one; the CSV,
    the progress bar, the histogram and the failures by test."""
    lab = "trap-and-emulate"
    batch = tmp_path / "submissions"
    batch.mkdir()
    shutil.copytree(LABS / lab / "solution", batch / "alice")
    variant(batch, lab, "bob", [("hashdev.py", "        if offset == VERSION:\n            return 1",
                                 "        if offset == VERSION:\n            return 0xFFFFFFFF")])
    variant(batch, lab, "carol", [("hashdev.py",
                                   "        if offset == RESULT:\n            return self.result",
                                   "        if offset == RESULT:\n"
                                   "            raise RuntimeError('RESULT is broken')")])
    out_dir, scores_csv = tmp_path / "out", tmp_path / "scores.csv"
    status, out, err = run_grader(LABS / lab, "--batch", batch, *JOBS, "--csv", scores_csv,
                                  "--output-dir", out_dir, "--timeout", "10")
    assert status == 0, err
    results = {name: json.loads((out_dir / name / "results.json").read_text())
               for name in ("alice", "bob", "carol")}
    assert not list(batch.glob("*/results.json"))          # --output-dir, not the folders
    for value in results.values():
        check_gradescope(value, lab)
    assert results["alice"]["score"] == 16
    bob = {t["name"]: t for t in results["bob"]["tests"]}
    assert {n for n, t in bob.items() if t["status"] == "passed"} == {
        "test_route", "test_power_on_state_and_access_sizes"}
    assert "stopped after 5000000 instructions" in bob["test_scratch"]["output"]
    carol = {t["name"]: t for t in results["carol"]["tests"]}
    assert {n for n, t in carol.items() if t["status"] == "passed"} == {
        "test_magic_and_version", "test_scratch", "test_route"}
    assert "RuntimeError: RESULT is broken" in carol["test_reset"]["output"]
    assert "hashdev.py" in carol["test_reset"]["output"]         # where, in the student's file

    rows = list(csv.reader(scores_csv.open()))
    assert rows[0][:4] == ["submission", "graded", "score", "max_score"]
    assert rows[0][4:] == list(weights(lab))
    table = {row[0]: row for row in rows[1:]}
    assert sorted(table) == ["alice", "bob", "carol"]
    assert table["alice"][1:4] == ["yes", "16", "16"] and table["bob"][2] == "2"
    assert table["carol"][2] == "4"
    assert "grading [" in err and "3/3 submissions" in err
    assert "Graded 3 of 3 submissions of trap-and-emulate" in out
    assert "Scores (out of 16):" in out and "100% |" in out
    histogram = {line.split("|")[0].strip(): line.split()[-1]
                 for line in out.splitlines() if "|" in line}
    assert histogram["100%"] == "1" and histogram["10-19%"] == "1" \
        and histogram["20-29%"] == "1"
    assert "Failures by test:" in out
    assert any(line.split() == ["test_reset", "2", "of", "3"] for line in out.splitlines())


def test_syntax_error_keeps_the_tests_that_do_not_import_it(tmp_path):
    """passthrough-and-costs: with costs.py unimportable, the ANSWERS.md tests still pass."""
    lab = "passthrough-and-costs"
    broken = variant(tmp_path, lab, "syntax", [("costs.py", "def make_file(path, data, multiple=PAGE):",
                                                "def make_file(path, data, multiple=PAGE)")])
    results = grade_one(lab, broken, tmp_path)
    passed = {t["name"] for t in results["tests"] if t["status"] == "passed"}
    assert passed == {"test_answers_mention_each_model", "test_answers_quote_numbers"}
    for test in results["tests"]:
        if test["name"] not in passed:
            assert "SyntaxError" in test["output"] and "costs.py" in test["output"]


# -- the command line -------------------------------------------------------------------------------


def command(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "minivm.grading", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("args, words", [
    (["no-such-lab", "--submission", "."], "unknown lab 'no-such-lab' (labs: "),
    (["trap-and-emulate", "--submission", "/no/such/folder"], "no such submission folder"),
    (["trap-and-emulate", "--batch", "/no/such/folder"], "no such folder of submissions"),
    (["trap-and-emulate"], "give exactly one of"),
    ([], "which lab?"),
])
def test_bad_input_is_one_line_and_status_2(args, words, tmp_path):
    result = command(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("minivm: ")
    assert words in result.stderr
    assert not list(tmp_path.iterdir())                     # no results.json written


def test_list_and_default_output(tmp_path):
    result = command("--list")
    assert result.returncode == 0 and result.stdout.split() == sorted(LAB_NAMES)
    result = command(LABS / "trap-and-emulate", "--submission", LABS / "trap-and-emulate" / "starter",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 of 16 points" in result.stdout
    check_gradescope(json.loads((tmp_path / "results.json").read_text()), "trap-and-emulate")


def test_grade_module_is_light():
    """`minivm grade` is wired into the CLI: importing it must not pull in Unicorn."""
    code = ("import sys, minivm.grading.cli, minivm.grading.labkit, minivm.grading.sandbox; "
            "print(sorted(m for m in ('unicorn', 'capstone', 'elftools') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


# -- outputs and bad input, on a tiny lab -----------------------------------------------------------

TINY_TEST = '''
from minivm.grading import labkit


def test_answer():
    """The answer."""
    assert labkit.load("answer.py").answer() == 42


def test_message():
    labkit.load("answer.py").message()
'''
TINY_ANSWER = '''
def answer():
    return 42


def message():
    raise ValueError("a lone surrogate: \\udc80")
'''


def tiny_lab(tmp_path, weights=None, test=TINY_TEST):
    """A lab of two tests and a submission for it: (lab folder, submission folder)."""
    lab = tmp_path / "tiny"
    (lab / "tests").mkdir(parents=True)
    (lab / "tests" / "test_tiny.py").write_text(test)
    (lab / "lab.json").write_text(json.dumps({
        "title": "Tiny", "files": ["answer.py"], "timeout": 10,
        "weights": weights or {"test_answer": 1, "test_message": 1}}))
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "answer.py").write_text(TINY_ANSWER)
    return lab, submission


def test_results_are_valid_utf8_and_go_to_stdout(tmp_path):
    lab, submission = tiny_lab(tmp_path)
    result = subprocess.run([sys.executable, "-m", "minivm.grading", lab, "--submission",
                             submission, "--output", "-"], capture_output=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout.decode("utf-8"))          # strict UTF-8
    assert results["score"] == 1
    message = results["tests"][1]["output"]
    assert "ValueError: a lone surrogate: ?" in message
    assert "1 of 2 points" in result.stderr.decode()
    assert not (tmp_path / "-").exists()


@pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"), reason="writes /dev/null")
def test_outputs_are_written_through_never_replaced(tmp_path):
    """A device, a symlink's target and a FIFO with a reader are written through;
    a FIFO no one reads is refused."""
    import threading
    lab, submission = tiny_lab(tmp_path)
    assert run_grader(lab, "--submission", submission, "--output", "/dev/null")[0] == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    target = tmp_path / "target.json"
    target.write_text("old")
    (tmp_path / "link.json").symlink_to(target)
    assert run_grader(lab, "--submission", submission, "--output", tmp_path / "link.json")[0] == 0
    assert (tmp_path / "link.json").is_symlink() and json.loads(target.read_text())["score"] == 1
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    status, out, err = run_grader(lab, "--submission", submission, "--output", fifo)
    assert status == 2 and err.endswith("a FIFO that no one reads\n") and err.count("\n") == 1
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    status = run_grader(lab, "--submission", submission, "--output", fifo)[0]
    reader.join(timeout=60)
    assert status == 0 and json.loads(got[0])["score"] == 1
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("args, words", [
    (["--output", "."], "is a folder"),
    (["--output", "/no/such/folder/r.json"], "no such folder"),
    (["--timeout", "nan"], "must be more than 0 and at most 3600 seconds"),
    (["--timeout", "inf"], "must be more than 0 and at most 3600 seconds"),
    (["--timeout", "1e300"], "must be more than 0 and at most 3600 seconds"),
    (["--timeout", "0"], "must be more than 0"),
])
def test_bad_options_are_one_line(tmp_path, args, words):
    lab, submission = tiny_lab(tmp_path)
    result = command(lab, "--submission", submission, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert words in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("weights, test, words", [
    ({"test_answer": "two", "test_message": 1}, TINY_TEST, "the weight of test_answer is not "
                                                            "a number of points: 'two'"),
    ({"test_answer": 1, "test_message": float("inf")}, TINY_TEST, "not a number of points"),
    ({"test_answer": 1}, TINY_TEST, "tests with no weight: test_message"),
    (None, TINY_TEST + "\ndef broken(:\n", "a test file cannot be loaded: tests/test_tiny.py"),
])
def test_a_broken_lab_is_one_line(tmp_path, weights, test, words):
    lab, submission = tiny_lab(tmp_path, weights, test)
    text = (lab / "lab.json").read_text().replace("Infinity", "1e999")
    (lab / "lab.json").write_text(text)
    result = command(lab, "--submission", submission, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "results.json").exists()


def test_a_batch_reports_what_it_did_not_grade(tmp_path):
    """A test that ends its judge leaves that submission NOT GRADED (score 0, in the CSV and
    the summary); stray entries and the output folder are skipped and named."""
    crash = TINY_TEST + '''

def test_crash():
    import os
    if labkit.load("answer.py").answer() == 0:
        os._exit(3)
'''
    lab, submission = tiny_lab(tmp_path, {"test_answer": 1, "test_message": 1, "test_crash": 1},
                               crash)
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copytree(submission, batch / "alice")
    shutil.copytree(submission, batch / "bob")
    (batch / "bob" / "answer.py").write_text("def answer():\n    return 0\n")
    (batch / "notes.txt").write_text("")
    (batch / "out").mkdir()
    status, out, err = run_grader(lab, "--batch", batch, "--output-dir", batch / "out",
                                  "--csv", tmp_path / "s.csv", *JOBS)
    assert status == 0, err
    assert sorted(p.name for p in (batch / "out").iterdir()) == ["alice", "bob"]
    bob = json.loads((batch / "out" / "bob" / "results.json").read_text())
    assert bob["score"] == 0 and not bob["extra_data"]["graded"]
    assert "could not be graded" in bob["output"]
    assert json.loads((batch / "out" / "alice" / "results.json").read_text())["score"] == 2
    rows = {row[0]: row for row in csv.reader((tmp_path / "s.csv").open())}
    assert rows["bob"][1:3] == ["NOT GRADED", ""] and rows["alice"][1:3] == ["yes", "2"]
    assert "Graded 1 of 2 submissions" in out
    assert "NOT GRADED: bob: the grader's test process ended early (status 3)" in out
    assert "Skipped: notes.txt (not a folder)" in out and "Skipped: out (the output folder)" in out


def test_a_batch_never_writes_through_what_a_submission_planted(tmp_path):
    """Without --output-dir results go into each submission's folder: a planted link named
    like the old temporary file is not followed, a FIFO does not block and a folder named
    results.json is refused for that submission only, with a line in the summary."""
    lab, submission = tiny_lab(tmp_path)
    batch = tmp_path / "batch"
    batch.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for name in ("alice", "mallory", "fifo", "folder"):
        shutil.copytree(submission, batch / name)
    (batch / "mallory" / f"results.json.tmp{os.getpid()}").symlink_to(victim)
    os.mkfifo(batch / "fifo" / "results.json")
    (batch / "folder" / "results.json").mkdir()
    status, out, err = run_grader(lab, "--batch", batch, *JOBS)
    assert status == 0, err
    assert victim.read_text() == "keep me"
    for name in ("alice", "mallory"):
        assert json.loads((batch / name / "results.json").read_text())["score"] == 1
    assert stat.S_ISFIFO(os.lstat(batch / "fifo" / "results.json").st_mode)
    assert "RESULTS NOT WRITTEN: fifo:" in out and "RESULTS NOT WRITTEN: folder:" in out, out


def test_grading_from_inside_a_submission_imports_none_of_it(tmp_path):
    """`python -m minivm.grading LAB --submission .` run in the submission's folder: its
    modules shadow nothing in the grader, its judges or their children."""
    lab, submission = tiny_lab(tmp_path)
    marker = tmp_path / "shadowed"
    for name in ("tempfile", "json", "signal"):
        (submission / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write({name!r})\nraise SystemExit(9)\n")
    result = subprocess.run([sys.executable, "-m", "minivm.grading", lab, "--submission", ".",
                             "--output", tmp_path / "r.json"], capture_output=True, text=True,
                            timeout=120, cwd=submission)
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), marker.read_text()
    assert json.loads((tmp_path / "r.json").read_text())["score"] == 1


OVERSIZED_REPLY = '''
import os, struct, sys


def answer():
    body = b'{"ok": 42, "back": []}' + b" " * (8 << 20)      # a right answer, 8 MiB long
    caller = sys._getframe()
    while "reply_fd" not in caller.f_locals:                  # the server's own pipe
        caller = caller.f_back
    frame = memoryview(struct.pack("<II", len(body), 0) + body)
    while frame:
        frame = frame[os.write(caller.f_locals["reply_fd"], frame):]
    os._exit(0)
'''


def test_an_oversized_reply_is_refused(tmp_path):
    """A reply frame far beyond what any lab sends (the judge would decode it all, in one
    call no alarm stops) is refused: the test fails, the grading goes on."""
    lab, submission = tiny_lab(tmp_path)
    (submission / "answer.py").write_text(OVERSIZED_REPLY)
    assert run_grader(lab, "--submission", submission, "--output", tmp_path / "r.json")[0] == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert scores(results)["test_answer"] == 0, results["tests"][0]["output"]
    assert "frame too large" in results["tests"][0]["output"], results["tests"][0]["output"]


def test_jobs_default_to_the_usable_cpus():
    from minivm.grading.grader import available_cpus
    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))


@pytest.mark.skipif(not shutil.which("unshare") and not os.environ.get("CI"),
                    reason="needs unshare (util-linux)")
def test_without_isolation_grading_works_and_says_what_is_missing(tmp_path):
    """In a user namespace that maps only root (no other user id, no cgroups, no /proc of
    its own), the grader grades and names the missing protections: one line on stderr,
    and results.json's extra_data."""
    lab, submission = tiny_lab(tmp_path)
    result = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-m",
                             "minivm.grading", lab, "--submission", submission, "--output",
                             tmp_path / "r.json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("minivm: grading without ")
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["score"] == 1 and results["extra_data"]["graded"]
    missing = results["extra_data"]["missing_protections"]
    assert "a user id of its own (not root)" in missing and "network isolation" in missing
    assert any(m.startswith("a private view of the files") for m in missing)


def nest(folder, depth):
    """depth folders, one in the other, in folder (without recursing or changing folder)."""
    fd = os.open(folder, os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)


NESTER = TINY_ANSWER + '''

import os as _os
_fd = _os.open(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))), _os.O_DIRECTORY)
for _ in range(1100):                   # in the slot's own folder, for the next test to meet
    _os.mkdir("d", dir_fd=_fd)
    _inner = _os.open("d", _os.O_DIRECTORY, dir_fd=_fd)
    _os.close(_fd)
    _fd = _inner
'''


def test_deep_folders_grade_no_one_wrongly(tmp_path):
    """A submission 1100 folders deep is not graded, with a reason; one that nests 1100
    folders in its slot's folder costs the next submission of that slot nothing."""
    lab, submission = tiny_lab(tmp_path)
    batch = tmp_path / "batch"
    batch.mkdir()
    for name in ("a-deep", "b-nester", "c-honest"):
        shutil.copytree(submission, batch / name)
    nest(batch / "a-deep", 1100)
    (batch / "b-nester" / "answer.py").write_text(NESTER)
    try:
        status, out, err = run_grader(lab, "--batch", batch, "--jobs", "1")
        assert status == 0, err
        results = {name: json.loads((batch / name / "results.json").read_text())
                   for name in ("a-deep", "b-nester", "c-honest")}
        assert not results["a-deep"]["extra_data"]["graded"]
        assert "nest more than 16 deep" in results["a-deep"]["output"]
        assert results["b-nester"]["score"] == 1, results["b-nester"]["output"]
        assert results["c-honest"]["extra_data"]["graded"], results["c-honest"]["output"]
        assert results["c-honest"]["score"] == 1, results["c-honest"]["output"]
    finally:
        subprocess.run(["rm", "-rf", batch / "a-deep"], check=True)


KEYRING = TINY_ANSWER + '''

import ctypes as _ctypes, os as _os
_syscall = _ctypes.CDLL(None, use_errno=True).syscall
_ADD_KEY, _KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}[_os.uname().machine]
if _syscall(_KEYCTL, 10, -4, b"user", b"minivm-note", 0) >= 0:     # KEYCTL_SEARCH in @u
    def answer():
        return 42                       # a note from an earlier submission was there
else:
    _syscall(_ADD_KEY, b"user", b"minivm-note", b"the answer is 42", 16, -4)

    def answer():
        return 0
'''


def test_nothing_passes_between_submissions_through_kernel_keyrings(tmp_path):
    """A submission leaves a key in its user's keyring; the next submission of the same slot
    (the same user id) finds no key."""
    lab, submission = tiny_lab(tmp_path)
    batch = tmp_path / "batch"
    batch.mkdir()
    for name in ("a-writer", "b-reader"):
        shutil.copytree(submission, batch / name)
        (batch / name / "answer.py").write_text(KEYRING)
    status, out, err = run_grader(lab, "--batch", batch, "--jobs", "1")
    assert status == 0, err
    for name in ("a-writer", "b-reader"):
        results = json.loads((batch / name / "results.json").read_text())
        assert scores(results)["test_answer"] == 0, (name, results["tests"][0]["output"])


FILLER = TINY_ANSWER + '''

import os as _os
_home, _written = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))), 0
try:
    for _n in range(16):
        with open(_os.path.join(_home, f"fill{_n}"), "wb") as _stream:
            for _ in range(16):
                _written += _stream.write(bytes(1 << 20))
except OSError:
    pass
for _n in range(16):
    try:
        _os.unlink(_os.path.join(_home, f"fill{_n}"))
    except OSError:
        pass


def answer():
    return 42 if _written >= 256 << 20 else 0       # right only if the disk had no cap
'''


def test_a_submission_cannot_fill_the_disk(tmp_path):
    """The slot's folder holds at most jail.HOME_MB in all: 256 MiB in 16 files do not fit."""
    lab, submission = tiny_lab(tmp_path)
    (submission / "answer.py").write_text(FILLER)
    output = tmp_path / "r.json"
    assert run_grader(lab, "--submission", submission, "--output", output)[0] == 0
    results = json.loads(output.read_text())
    assert scores(results)["test_answer"] == 0, results["tests"][0]["output"]


NAME_OF_NAMES = '''
REGISTERS = {MAGIC: "MAGIC " + " ".join(f"hashdev.hash0.{name} read write" for name in (
    "VERSION", "CONTROL", "DATA", "RESULT", "COUNT", "SCRATCH"))}
'''


def test_a_register_name_naming_all_the_others_names_nothing(tmp_path):
    """One REGISTERS name holding every other register's name and both directions does not
    pass the trace test (the trace then names MAGIC only)."""
    lab = "trap-and-emulate"
    submission = variant(tmp_path, lab, "names")
    with open(submission / "hashdev.py", "a") as stream:
        stream.write(NAME_OF_NAMES)
    assert scores(grade_one(lab, submission, tmp_path))["test_trace_names_registers"] == 0
