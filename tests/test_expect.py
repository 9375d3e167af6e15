"""Scripted input (minivm/expect.py): type once the guest has printed a prompt.

The end-to-end tests run the committed uart_echo firmware on the real vCPU,
through the Python API (Machine(input=Expect(...)), as lab tests and the
grader do) and through the command line (--expect/--send, --input-after).
uart_echo prints a banner ending "q quits\\n", then echoes what it receives
upper-cased, and exits 0 on 'q' (firmware/uart_echo.c).
"""
import io

import pytest

from conftest import firmware, minivm
from minivm.cpu import ExitReason
from minivm.expect import Expect, steps_from_options
from minivm.machine import EXIT_GUEST_ERROR, Machine

BANNER = b"uart_echo: type away, q quits\n"


def run_echo(script, trace=None):
    return Machine(firmware("uart_echo"), input=script, trace=trace,
                   trace_only="mmio" if trace else None).run()


def test_keys_typed_after_the_prompt():
    result = run_echo(Expect([("q quits\n", "hello q")]))
    assert (result.output, result.exit_code) == (BANNER + b"HELLO q: 6 bytes echoed, bye\n", 0)


def test_each_step_waits_for_its_text():
    result = run_echo(Expect([("", "hi"), ("HI", " there"), ("THERE", "q")]))
    assert result.output == BANNER + b"HI THEREq: 8 bytes echoed, bye\n"


def lsr_reads(trace):
    """The LSR values uart_echo saw while printing its banner (putc polls LSR)."""
    lines = trace.getvalue().splitlines()
    end_of_banner = min(n for n, line in enumerate(lines) if "write 0x0a" in line)
    return {line.split()[-1] for line in lines[:end_of_banner] if "uart0.LSR" in line}


def test_no_key_arrives_before_the_prompt_unlike_plain_input():
    # Plain input is there from virtual time 0: LSR shows a byte waiting
    # (DR, bit 0) while the banner is still being printed.  A script waits.
    scripted, plain = io.StringIO(), io.StringIO()
    run_echo(Expect([("q quits\n", "q")]), trace=scripted)
    run_echo(b"q", trace=plain)
    assert lsr_reads(scripted) == {"0x60"}
    assert "0x61" in lsr_reads(plain)


def test_scripted_runs_repeat_exactly():
    traces = [io.StringIO(), io.StringIO()]
    for trace in traces:
        run_echo(Expect([("quits", "abc"), ("ABC", "q")]), trace=trace)
    assert traces[0].getvalue() == traces[1].getvalue()


def test_last_text_without_keys_ends_the_run():
    result = run_echo(Expect([("", "ab"), ("AB", None)]))
    assert (result.output, result.exit_code, result.reason) == (BANNER + b"AB", 0,
                                                                ExitReason.FINISH)


def test_text_that_never_comes_leaves_the_guest_waiting():
    result = run_echo(Expect([("login:", "root\n")]))
    assert result.exit_code == EXIT_GUEST_ERROR and "nothing that could wake it" in result.message
    assert result.output == BANNER


def test_options_become_steps_in_order():
    options = [("--send", "a"), ("--expect", "A"), ("--expect", "B\\n"), ("--send", "q\\x21"),
               ("--expect", "end")]
    assert steps_from_options(options) == [(b"", b"a"), (b"A", b""), (b"B\n", b"q!"),
                                           (b"end", None)]


def test_command_line_script():
    done = minivm("run", "uart_echo", "--expect", "quits\\n", "--send", "ab\\x71")
    assert (done.stdout, done.returncode) == (BANNER + b"ABq: 2 bytes echoed, bye\n", 0)


def test_command_line_input_after(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_bytes(b"xyq")
    done = minivm("run", "uart_echo", "--input", str(keys), "--input-after", "quits")
    assert (done.stdout, done.returncode) == (BANNER + b"XYq: 2 bytes echoed, bye\n", 0)


@pytest.mark.parametrize("options, words", [
    (["--input-after", "x"], "--input-after needs --input FILE"),
    (["--input", "k.txt", "--expect", "x"], "use one or the other"),
    (["--send", "\\xZZ"], "--send '\\xZZ': invalid \\x escape"),
    (["--send", "\\x4"], "--send '\\x4': invalid \\x escape"),
    (["--expect", "ab\\"], "--expect 'ab\\': Trailing \\ in string"),
])
def test_command_line_misuse_is_one_line(options, words):
    done = minivm("run", "uart_echo", *options)
    error = done.stderr.decode()
    assert done.returncode == 2 and words in error and error.count("\n") == 1
