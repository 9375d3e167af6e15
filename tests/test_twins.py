"""The Cython fast path and its pure-Python twin behave the same.

MINIVM_PURE=1 forces the twin; when the extension is not built, both runs
use the twin and the comparison still holds (and says so in --stats)."""
import os

from conftest import firmware, minivm


def run(pure, *args):
    env = dict(os.environ, MINIVM_PURE="1" if pure else "0")
    return minivm("run", *args, env=env)


def test_instruction_clock_twins_agree(tmp_path):
    fast = run(False, "bench_loop", "--max-insns", "5000", "--stats")
    pure = run(True, "bench_loop", "--max-insns", "5000", "--stats")
    for done in (fast, pure):
        assert done.returncode == 124
        assert "5000 instructions" in done.stderr.decode()
    assert "pure Python (MINIVM_PURE=1)" in pure.stderr.decode()


def test_traces_are_identical_on_both_twins(tmp_path):
    fast_trace, pure_trace = tmp_path / "fast.txt", tmp_path / "pure.txt"
    assert run(False, firmware("hello"), "--trace-file", fast_trace).returncode == 0
    assert run(True, firmware("hello"), "--trace-file", pure_trace).returncode == 0
    assert fast_trace.read_text() == pure_trace.read_text()
    assert fast_trace.read_text().count("uart0.THR") == 109
