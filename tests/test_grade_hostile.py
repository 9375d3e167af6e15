"""Hostile submissions, each graded with the real isolation (minivm/grading/jail.py).

One batch of paravirtualized-disk holds a good submission and one hostile
submission per attack.  Each hostile one is the reference solution with its
chain walker broken (so it honestly earns everything but the chain tests) plus
an attack that, if it worked, would raise its score, lower the good one's, or
leave the grader without valid results; the resource attacks instead sit in
need_event (used by two tests) and return the right answer only if the limit
they test failed to hold.  Each must score exactly what its honest code earns,
leave the good submission untouched, and leave a valid results.json that no
leftover process changes afterwards.

Needs root (user ids, namespaces, cgroups): skipped with a reason elsewhere,
never in CI.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from test_grade import (CHAIN, LABS, VQ, VQ_CHAIN_TESTS, VQ_NEED_EVENT_TESTS,
                        check_gradescope, max_score, run_grader, scores, variant, weights)
from minivm.datafiles import data_folders
from minivm.grading import jail

pytestmark = pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                                reason="the grader's isolation needs root")

BROKEN_CHAIN = [("virtqueue.py", CHAIN, "        return []\n" + CHAIN)]

LEFTOVER = '''
import os as _os, time as _time, json as _json
if _os.fork() == 0:
    _os.setsid()
    if _os.fork() == 0:
        _time.sleep(3)          # long after its test (and the grading) ended
        for _path in {targets!r}:
            try:
                with open(_path, "w") as _stream:
                    _stream.write(_json.dumps({{"score": 1000, "tests": []}}))
            except OSError:
                pass
    _os._exit(0)
'''

READER = '''
import os as _os
_found = []
for _path in {paths!r}:
    try:
        with open(_path) as _stream:
            _found.append(_stream.read())
    except OSError:
        pass
for _text in _found:
    if "def test_" in _text:
        print(_text)                    # a hidden test, into the results
    else:
        exec(_text, globals())          # the reference solution: its full marks
'''

PROC = '''
import json as _json, os as _os
_seen = 0
for _pid in _os.listdir("/proc"):
    if not _pid.isdigit() or int(_pid) == _os.getpid():
        continue
    _seen += 1
    for _name in ("environ", "cmdline", "mem"):
        try:
            with open(f"/proc/{{_pid}}/{{_name}}", "rb") as _stream:
                _stream.read(4096)
        except OSError:
            pass
    try:
        _fds = _os.listdir(f"/proc/{{_pid}}/fd")
    except OSError:
        _fds = []
    for _fd in _fds:
        try:
            with open(f"/proc/{{_pid}}/fd/{{_fd}}", "w") as _stream:
                for _test in {tests!r}:
                    _stream.write(_json.dumps({{"test": _test, "status": "passed",
                                               "fraction": 1.0, "kind": "passed"}}) + "\\n")
        except OSError:
            pass
print(f"other processes seen: {{_seen}}")
'''

SHADOW = '''
import os as _os, sys as _sys
_FORGED = "def loads(*a, **k):\\n    return {{'test': 'x', 'status': 'passed', 'fraction': 1}}\\n"
for _folder in set(_sys.path + {folders!r}):
    try:
        with open(_os.path.join(_folder or ".", "json.py"), "w") as _stream:
            _stream.write(_FORGED)
    except OSError:
        pass
'''

KILLER = '''
import os as _os, signal as _signal
for _sig in (_signal.SIGKILL, _signal.SIGTERM, _signal.SIGSTOP):
    for _pid in [_os.getppid(), 1] + list(range(2, 32768)):
        if _pid != _os.getpid():
            try:
                _os.kill(_pid, _sig)
            except OSError:
                pass
'''

OVERWRITER = '''
import os as _os
for _path in {targets!r}:
    try:
        with open(_path, "w") as _stream:
            _stream.write("raise SystemExit('overwritten')\\n")
    except OSError:
        pass
for _top in ("/tmp", "/work", "/home", "/root"):
    for _root, _dirs, _files in _os.walk(_top):
        _dirs[:] = [d for d in _dirs                               # all but its own folder
                    if _os.path.join(_root, d) != _os.path.dirname(_os.getcwd())]
        for _name in _files:
            if _name in ("virtqueue.py", "results.json"):
                try:
                    with open(_os.path.join(_root, _name), "a") as _stream:
                        _stream.write("\\nraise SystemExit('overwritten')\\n")
                except OSError:
                    pass
'''

FILE_DESCRIPTORS = '''
import os as _os, time as _time
for _ in range(3):              # children that hold every descriptor they can get
    if _os.fork() == 0:
        try:
            while True:
                _os.pipe()
        except OSError:
            _time.sleep(60)
        _os._exit(0)
'''

SIGNALS = '''
import signal as _signal, time as _time
for _sig in _signal.valid_signals():
    try:
        _signal.signal(_sig, lambda *args: _time.sleep(1000))
    except (OSError, ValueError, RuntimeError):
        pass
'''

RIGHT = "    return (new - event - 1) & 0xFFFF < (new - old) & 0xFFFF"

FORK_BOMB = '''    import os, time
    made = 0
    try:
        while made < 2000:
            if os.fork() == 0:
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.05)
            made += 1
    except OSError:
        pass
    if made >= 2000:                    # the process cap did not hold
''' + "    " + RIGHT + '''
    raise RuntimeError(f"fork failed after {made} children")'''

MEMORY_CHILDREN = '''    import os, select, time
    reader, writer = os.pipe()
    children = []
    for _ in range(8):
        child = os.fork()
        if child == 0:
            hog = b"x" * (64 << 20)     # 8 x 64 MiB, against 256 MiB for all together
            os.write(writer, b"+")
            time.sleep(60)
        children.append(child)
    os.close(writer)
    got = b""
    stop = time.monotonic() + 3
    while len(got) < 8 and select.select([reader], [], [], max(0, stop - time.monotonic()))[0]:
        chunk = os.read(reader, 8)
        if not chunk:
            break
        got += chunk
    time.sleep(1)                       # time for a watchdog to see them
    alive = sum(os.waitpid(child, os.WNOHANG) == (0, 0) for child in children)
    if len(got) == 8 and alive == 8:    # the memory cap did not hold
''' + "    " + RIGHT + '''
    raise MemoryError(f"{alive} of 8 children kept their memory")'''

OUTPUT = '''    import sys
    for _ in range(100):
        sys.stdout.write("x" * (1 << 20))      # 100 MiB
    sys.stdout.flush()
''' + RIGHT

SPIN = "    while True:\n        pass"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the batch once: ({name: results}, {name: results 4 s later}, the batch)."""
    tmp = tmp_path_factory.mktemp("hostile")
    lab = tmp / "lab"
    shutil.copytree(LABS / VQ, lab)
    config = json.loads((lab / "lab.json").read_text())
    config.update(memory_mb=256, processes=64, timeout=10)
    (lab / "lab.json").write_text(json.dumps(config))
    batch = tmp / "batch"
    batch.mkdir()
    shutil.copytree(LABS / VQ / "solution", batch / "good")
    good = [str(batch / "good" / "virtqueue.py"), str(batch / "good" / "results.json")]
    solutions = [str(LABS / VQ / "solution" / "virtqueue.py"),
                 str(lab / "solution" / "virtqueue.py"),
                 *[os.path.join(folder, VQ, "solution", "virtqueue.py")
                   for folder in data_folders("labs")],
                 *[str(path) for path in (lab / "hidden").glob("test_*.py")]]
    sites = [p for p in sys.path if p.endswith("-packages")]
    attacks = {
        "leftover": LEFTOVER.format(targets=[str(batch / "leftover" / "results.json"), *good]),
        "reader": READER.format(paths=solutions),
        "proc": PROC.format(tests=sorted(weights(VQ))),
        "shadow": SHADOW.format(folders=sites),
        "killer": KILLER,
        "overwriter": OVERWRITER.format(targets=good),
        "descriptors": FILE_DESCRIPTORS,
    }
    for name, attack in attacks.items():
        variant(batch, VQ, name, BROKEN_CHAIN, prefix=attack)
    (batch / "shadow" / "json.py").write_text("raise SystemExit('shadowed')\n")
    variant(batch, VQ, "signals", BROKEN_CHAIN + [("virtqueue.py", RIGHT, SPIN)],
            prefix=SIGNALS)
    for name, body in (("bomb", FORK_BOMB), ("memory", MEMORY_CHILDREN), ("output", OUTPUT)):
        variant(batch, VQ, name, [("virtqueue.py", RIGHT, body)])
    (batch / "stray.zip").write_bytes(b"PK")
    status, out, err = run_grader(lab, "--batch", batch, "--jobs", "2")
    assert status == 0, err
    # The real isolation: all of it (a watchdog may stand in for a memory cgroup).
    assert [line for line in err.splitlines() if "grading without" in line
            and line.replace("a memory cgroup (a watchdog sums its memory instead)", "")
            .strip() != "minivm: grading without"] == [], err
    first = {p.parent.name: json.loads(p.read_text()) for p in batch.glob("*/results.json")}
    time.sleep(4)                                        # the leftover process's moment
    later = {p.parent.name: json.loads(p.read_text()) for p in batch.glob("*/results.json")}
    return first, later, batch, sites, out, lab


def lost(results, good):
    return {test for test, score in scores(results).items() if score < scores(good)[test]}


@pytest.mark.parametrize("name, losses", [
    ("leftover", VQ_CHAIN_TESTS), ("reader", VQ_CHAIN_TESTS), ("proc", VQ_CHAIN_TESTS),
    ("shadow", VQ_CHAIN_TESTS), ("killer", VQ_CHAIN_TESTS), ("overwriter", VQ_CHAIN_TESTS),
    ("descriptors", VQ_CHAIN_TESTS), ("signals", VQ_CHAIN_TESTS | VQ_NEED_EVENT_TESTS),
    ("bomb", VQ_NEED_EVENT_TESTS), ("memory", VQ_NEED_EVENT_TESTS),
    ("output", VQ_NEED_EVENT_TESTS)])
def test_a_hostile_submission_earns_only_what_its_honest_code_earns(graded, name, losses):
    first, later, batch, _, _, _ = graded
    check_gradescope(first[name], VQ)
    assert first[name]["extra_data"]["graded"], first[name]["output"]
    assert lost(first[name], first["good"]) == losses
    assert first["good"]["score"] == max_score(VQ)
    assert later == first                    # nothing changed results.json after grading


def test_no_process_outlives_its_test(graded):
    """No process of a slot's user is left (each is a fork of a judge of this lab:
    its command line names the lab; other graders on this machine are not ours)."""
    lab = str(graded[5]).encode()
    low, high = jail.UIDS
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as stream:
                uid = next(int(line.split()[1]) for line in stream if line.startswith("Uid:"))
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                command_line = stream.read()
        except (OSError, StopIteration):
            continue
        if low <= uid < high and lab in command_line:
            leftovers.append(pid)
    assert leftovers == []


def test_what_the_attacks_met(graded):
    """The messages say what stopped each resource attack; the files attacked are intact."""
    first, _, batch, sites, out, _ = graded
    tests = {name: {t["name"]: t["output"] for t in first[name]["tests"]} for name in first}
    assert "fork failed after" in tests["bomb"]["test_need_event"]
    assert "printed more than 64 KiB" in tests["output"]["test_need_event"]
    assert "did not return within" in tests["signals"]["test_need_event"]
    assert "of 8 children kept their memory" in tests["memory"]["test_need_event"] \
        or "killed by SIGKILL" in tests["memory"]["test_need_event"]
    assert "other processes seen: 0" in tests["proc"]["test_pending_and_take"]
    assert not any("def test_" in text for text in tests["reader"].values())
    assert (batch / "good" / "virtqueue.py").read_text() == \
        (LABS / VQ / "solution" / "virtqueue.py").read_text()
    assert not [site for site in sites if os.path.exists(os.path.join(site, "json.py"))]
    assert "Skipped: stray.zip (not a folder (unpack zips first))" in out
    timed_out = next(line for line in out.splitlines() if line.startswith("Timed out"))
    assert "signals" in timed_out.split(": ", 1)[1].split(", ")


ED = "emulated-disk"
PLANT = '''
    folder = os.path.dirname(path)
    if os.path.exists(os.path.join(folder, "reference.img")):
        raise RuntimeError("the judge's reference image is within reach")
    for name in ("reference.img", "reference-run.img"):
        try:
            os.symlink({victim!r}, os.path.join(folder, name))
        except OSError:
            pass
    from minivm.devices.piodisk import DiskImage
    return DiskImage(path, read_only)
'''


def test_the_judges_files_are_out_of_the_students_reach(tmp_path):
    """The reference's disk images are neither visible in the student's folder nor written
    through a link the student planted where they would be (root writing any file)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    victim.chmod(0o600)
    submission = variant(tmp_path, ED, "planter", [(
        "piodisk.py", "    from minivm.devices.piodisk import DiskImage\n"
                      "    return DiskImage(path, read_only)\n", PLANT.format(victim=str(victim)))],
        prefix="import os\n")
    output = tmp_path / "results.json"
    status, out, err = run_grader(LABS / ED, "--submission", submission, "--output", output)
    assert status == 0, err
    results = json.loads(output.read_text())
    assert results["score"] == max_score(ED), results["output"]
    assert victim.read_text() == "keep me" and stat.S_IMODE(victim.stat().st_mode) == 0o600


def test_handing_over_a_slot_never_follows_a_swapped_link(tmp_path):
    """While the judge gives the slot's folder to its user, a process of the slot swaps a
    folder in it with a link to a root-only folder (renameat2 RENAME_EXCHANGE), over and
    over: nothing outside the slot's folder changes owner, and handing over never fails."""
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    (victim / "secret.txt").write_text("root's")
    home = tmp_path / "home"
    (home / "folder" / "inner").mkdir(parents=True)
    for n in range(20):
        (home / "folder" / f"file{n}").write_text("")
    (home / "link").symlink_to(victim)
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, home / "folder", home / "link"])
    failures = []
    try:
        for _ in range(2000):
            try:
                jail.hand_over({"uid": jail.UIDS[0] + 7, "home": str(home)})
            except OSError as error:
                failures.append(error)
            if (victim / "secret.txt").stat().st_uid != 0:
                break
    finally:
        swapper.kill()
        swapper.wait()
    assert [p.stat().st_uid for p in (victim, victim / "secret.txt")] == [0, 0]
    assert failures == []


SWAPPER = """
import ctypes, sys
rename_exchange = ctypes.CDLL(None).renameat2
a, b = sys.argv[1].encode(), sys.argv[2].encode()
while True:
    rename_exchange(-100, a, -100, b, 2)            # AT_FDCWD, RENAME_EXCHANGE
"""
