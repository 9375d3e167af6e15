"""The grader's pytest plugin: what the judge process adds to pytest.

The grader (minivm/grading/grader.py) runs, per submission (or per share of
its tests), one judge process as the grader's own user:

    python -s -m pytest -p minivm.grading.plugin LAB/tests [LAB/hidden]

with the job in $MINIVM_GRADE_JOB and the slot's jail in $MINIVM_GRADE_JAIL
(the environment of a root process: no one else can read it).  pytest finds
and runs the lab's tests as it always does; this plugin adds only:

  - a fresh copy of the submission and a fresh tmp_path for every test, both
    handed to the slot's user (the student's processes run as that user);
  - a wall-clock limit per test (SIGALRM in this process; labkit stops
    waiting for the student's process in time, too);
  - the end of every process of the slot's user when a test ends;
  - one JSON line per collected list and per test on the job's result
    pipe, which only this process holds: {"test", "status", "fraction",
    "kind", "message", "seconds"}.

The student's code never runs in this process: a test reaches it through
labkit, in a jailed process, and gets back plain data only.  This process is
made non-dumpable, so even a process of the same user cannot read its memory.
"""
import gc
import json
import os
import shutil
import signal
import time
import traceback

import pytest

from minivm.grading import jail as jails
from minivm.grading import labkit

MAX_MESSAGE = 3000
KIND = {"SubmissionTimeout": "timeout", "SubmissionCrashed": "crash"}


class TestTimedOut(BaseException):
    """The test's wall-clock limit passed (a BaseException: `except Exception` in
    a test does not swallow it)."""


def _job():
    return json.loads(os.environ["MINIVM_GRADE_JOB"])


def _send(record):
    data = (json.dumps(record) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(JOB["fd"], view):]


JOB = None
JAIL = None


def pytest_configure(config):
    global JOB, JAIL
    JOB, JAIL = _job(), jails.from_environment()
    os.environ.pop("MINIVM_GRADE_JOB")
    jails.harden_judge()
    if JAIL:
        labkit.start_spawner()
    labkit.set_judge_work(JOB["work"])
    os.umask(0)     # what a test makes in tmp_path, the student's processes may change
    signal.signal(signal.SIGALRM, _timed_out)


def _timed_out(signum, frame):
    raise TestTimedOut()


def pytest_collectreport(report):
    if report.failed:
        text = str(report.longrepr).strip().splitlines()
        _send({"lab_error": f"{report.nodeid}: {text[-1] if text else 'cannot be collected'}"})


def pytest_collection_modifyitems(session, config, items):
    _send({"collected": [{"name": item.name, "folder": item.path.parent.name,
                          "doc": _first_line(item.obj.__doc__)} for item in items]})
    share, shares = JOB["share"]                    # this judge runs every shares-th test
    config.hook.pytest_deselected(items=[i for n, i in enumerate(items) if n % shares != share])
    items[:] = items[share::shares]


def _first_line(doc):
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


@pytest.fixture
def tmp_path():
    """A fresh folder the test and the student's processes share."""
    import pathlib
    folder = os.path.join(JAIL["home"] if JAIL else JOB["work"], f"tmp-{time.monotonic_ns()}")
    os.makedirs(folder)
    return pathlib.Path(folder)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    home = JAIL["home"] if JAIL else JOB["work"]
    # what the last test left (rm(1): a submission may nest folders thousands deep)
    jails.remove_tree(*(os.path.join(home, name) for name in os.listdir(home)))
    copy = os.path.join(home, "submission")
    shutil.copytree(JOB["submission"], copy, symlinks=True)
    os.environ["MINIVM_SUBMISSION"] = copy
    item.verdict = None
    started = time.monotonic()
    labkit.set_deadline(started + JOB["timeout"])
    signal.setitimer(signal.ITIMER_REAL, JOB["timeout"])
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    record = item.verdict or {"status": "failed", "fraction": 0.0, "kind": "error",
                              "message": "the test did not run"}
    record["output"] = _submission_output()
    labkit.close_all()
    # The test's machines may sit in reference cycles; each holds a Unicorn
    # engine with a large reserved code buffer, and the judge's address
    # space is limited (test_memory_mb): free them before the next test.
    gc.collect()
    if JAIL and not jails.kill_all(JAIL, reap_any=True):
        record = {"status": "failed", "fraction": 0.0, "kind": "error",
                  "message": "processes of the submission could not be stopped", "output": ""}
    record.update(test=item.name, seconds=round(time.monotonic() - started, 3))
    _send(record)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    yield
    if item.verdict is not None and item.verdict["status"] == "failed":
        return                                      # the first failing phase says why
    if call.excinfo is None:
        if call.when == "call":
            item.verdict = {"status": "passed", "fraction": 1.0, "kind": "passed", "message": ""}
        return
    item.verdict = verdict(call.excinfo.value, str(item.path))


def verdict(error, test_file):
    """The record for an exception out of a test."""
    if isinstance(error, labkit.Partial):
        return {"status": "passed" if error.fraction >= 1 else "partial",
                "fraction": error.fraction, "kind": "partial", "message": str(error)}
    kind = KIND.get(type(error).__name__, "failed")
    if isinstance(error, TestTimedOut):
        kind, message = "timeout", (f"timed out: the test did not finish within "
                                    f"{JOB['timeout']:g} s (an infinite loop, or very slow code?)")
    elif isinstance(error, pytest.skip.Exception):
        message = f"skipped: {error.msg}"
    elif isinstance(error, labkit.SubmissionError):
        message = str(error)
    elif isinstance(error, AssertionError):
        where = _where(error, test_file)
        message = str(error).split("\nassert ")[0] or (f"check failed: {where}" if where
                                                        else "check failed")
    else:
        kind, where = "error", _where(error, test_file)
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        message = f"the test itself failed with {text}" + (f"\n  at {where}" if where else "")
    return {"status": "failed", "fraction": 0.0, "kind": kind, "message": message[:MAX_MESSAGE]}


def _where(error, test_file):
    """The line of the test that failed, as `file:line: source`."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if os.path.abspath(frame.filename) == os.path.abspath(test_file)]
    if not frames:
        return ""
    frame = frames[-1]
    return f"{os.path.basename(frame.filename)}:{frame.lineno}: {(frame.line or '').strip()}"


def _submission_output():
    output = b""
    for filename, printed, total in labkit.outputs():
        if printed:
            more = f" (first {len(printed)} of {total} bytes)" if total > len(printed) else ""
            output += f"--- {filename} printed{more}:\n".encode() + printed + b"\n"
    return output[:4096].decode(errors="replace")


def pytest_sessionfinish(session, exitstatus):
    _send({"done": True})
