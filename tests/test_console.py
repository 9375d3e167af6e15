"""Unit tests of the serial console, minivm.console, and of input end to end.

Console is the UART's far end: output kept in memory or written to a stream,
line-buffered.  ByteInput hands the UART bytes from memory, a file or a pipe;
input_from() picks the source for a run (--input FILE, else stdin).  The
tests use real pipes and files (os.pipe, tmp_path), never a terminal, so
TerminalInput is not tested here.

The end-to-end tests run `python -m minivm run` as a user would, with the
committed uart_echo firmware: it echoes what it receives upper-cased and
exits 0 on 'q' (firmware/uart_echo.c).
"""
import os

import pytest

import oracle
from conftest import firmware, minivm
from minivm.console import ByteInput, Console, input_from
from minivm.errors import MinivmError


class Pipe:
    """A real pipe: `read_fd` and `write_fd`; each end is closed once, by close_*."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()
        self.open = {self.read_fd, self.write_fd}

    def write(self, data):
        os.write(self.write_fd, data)

    def close_write(self):
        self._close(self.write_fd)

    def _close(self, fd):
        if fd in self.open:
            self.open.discard(fd)
            os.close(fd)

    def close(self):
        for fd in list(self.open):
            self._close(fd)


@pytest.fixture
def pipe():
    pipe = Pipe()
    yield pipe
    pipe.close()


def drain(fd):
    """Everything readable from a non-blocking fd right now."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


# -- output ------------------------------------------------------------------------

def test_console_without_stream_captures_output():
    console = Console()
    console.write(b"ab")
    console.write(b"c\n")
    console.write(b"\x00\xff")
    assert bytes(console.captured) == b"abc\n\x00\xff"


def test_console_flush_without_stream_is_harmless():
    console = Console()
    console.write(b"x")
    console.flush()
    assert bytes(console.captured) == b"x"


def test_console_with_stream_writes_there_and_captures_nothing(pipe):
    os.set_blocking(pipe.read_fd, False)
    with open(pipe.write_fd, "wb", closefd=False) as stream:
        console = Console(stream)
        console.write(b"hello\n")
        assert drain(pipe.read_fd) == b"hello\n"
        assert bytes(console.captured) == b""


def test_console_stream_is_line_buffered(pipe):
    # A buffered writer on a real pipe: bytes reach the reader only on flush.
    os.set_blocking(pipe.read_fd, False)
    with open(pipe.write_fd, "wb", closefd=False) as stream:
        console = Console(stream)
        console.write(b"no newline yet")
        assert drain(pipe.read_fd) == b""
        console.write(b", now\nand half")
        assert drain(pipe.read_fd) == b"no newline yet, now\nand half"


def test_console_flush_pushes_a_partial_line(pipe):
    os.set_blocking(pipe.read_fd, False)
    with open(pipe.write_fd, "wb", closefd=False) as stream:
        console = Console(stream)
        console.write(b"prompt> ")
        assert drain(pipe.read_fd) == b""
        console.flush()
        assert drain(pipe.read_fd) == b"prompt> "


# -- ByteInput -----------------------------------------------------------------------

def test_byte_input_from_bytes_in_order_then_none():
    source = ByteInput(b"ab\n")
    assert source.exhausted is False
    assert [source.next_byte() for _ in range(3)] == [ord("a"), ord("b"), ord("\n")]
    assert source.next_byte() is None
    assert source.exhausted is True
    assert source.next_byte() is None         # and stays at the end


def test_byte_input_not_exhausted_before_the_last_byte_is_asked_past():
    source = ByteInput(b"xy")
    source.next_byte()
    source.next_byte()
    assert source.exhausted is False          # the end is seen by asking past it
    assert source.next_byte() is None
    assert source.exhausted is True


def test_empty_byte_input_is_exhausted_at_once():
    source = ByteInput(b"")
    assert source.exhausted is True
    assert source.next_byte() is None


def test_byte_input_is_not_interactive():
    assert ByteInput(b"a").interactive is False


def test_byte_input_from_a_pipe(pipe):
    data = bytes(range(256)) * 20             # more than one 4096-byte read
    source = ByteInput(fd=pipe.read_fd)
    assert source.exhausted is False
    pipe.write(data[:3000])
    pipe.write(data[3000:])            # fits the pipe buffer (64 KiB on Linux)
    pipe.close_write()
    got = bytearray()
    for _ in range(len(data)):
        byte = source.next_byte()
        assert byte is not None
        got.append(byte)
    assert bytes(got) == data
    assert source.next_byte() is None
    assert source.exhausted is True


def test_byte_input_from_an_empty_pipe_ends_at_once(pipe):
    pipe.close_write()
    source = ByteInput(fd=pipe.read_fd)
    assert source.next_byte() is None
    assert source.exhausted is True


def test_byte_input_from_a_pipe_waits_for_slow_writer(pipe):
    # Bytes written after the first read are still delivered, in order.
    source = ByteInput(fd=pipe.read_fd)
    pipe.write(b"1")
    assert source.next_byte() == ord("1")
    pipe.write(b"23")
    assert source.next_byte() == ord("2")
    pipe.close_write()
    assert source.next_byte() == ord("3")
    assert source.next_byte() is None


# -- input_from ------------------------------------------------------------------------

def test_input_from_a_file(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_bytes(b"hi\x00\n")
    source = input_from(str(path))
    assert isinstance(source, ByteInput)
    assert [source.next_byte() for _ in range(5)] == [ord("h"), ord("i"), 0, ord("\n"), None]
    assert source.exhausted is True


def test_input_from_a_file_wins_over_stdin(tmp_path, pipe):
    pipe.write(b"from stdin")
    path = tmp_path / "keys.txt"
    path.write_bytes(b"F")
    with open(pipe.read_fd, "rb", closefd=False) as stdin:
        source = input_from(str(path), stdin=stdin)
    assert [source.next_byte(), source.next_byte()] == [ord("F"), None]


def test_input_from_a_missing_file_is_a_minivm_error(tmp_path):
    path = tmp_path / "no-such-file.txt"
    with pytest.raises(MinivmError) as raised:
        input_from(str(path))
    message = str(raised.value)
    assert str(path) in message
    assert os.strerror(2) in message          # "No such file or directory"


def test_input_from_a_directory_is_a_minivm_error(tmp_path):
    with pytest.raises(MinivmError) as raised:
        input_from(str(tmp_path))
    assert str(tmp_path) in str(raised.value)
    assert "Is a directory" in str(raised.value)


def test_input_from_stdin_pipe(pipe):
    with open(pipe.read_fd, "rb", closefd=False) as stdin:
        source = input_from(None, stdin=stdin)
        assert isinstance(source, ByteInput)
        pipe.write(b"ok")
        pipe.close_write()
        assert [source.next_byte() for _ in range(3)] == [ord("o"), ord("k"), None]


def test_input_from_nothing_is_none():
    assert input_from(None) is None
    assert input_from(None, stdin=None) is None


def test_input_from_stdin_without_a_file_descriptor_is_none():
    import io
    assert input_from(None, stdin=io.BytesIO(b"abc")) is None


# -- end to end: the command line with input -----------------------------------------

ECHO_ABC = b"uart_echo: type away, q quits\nABC\nq: 4 bytes echoed, bye\n"


def test_uart_echo_from_stdin():
    done = minivm("run", firmware("uart_echo"), input=b"abc\nq")
    assert done.stderr == b""
    assert done.stdout == ECHO_ABC
    assert done.returncode == 0


def test_uart_echo_from_input_file(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_bytes(b"abc\nq")
    done = minivm("run", firmware("uart_echo"), "--input", keys)   # stdin is /dev/null
    assert done.stderr == b""
    assert done.stdout == ECHO_ABC
    assert done.returncode == 0


def test_uart_echo_input_file_ignores_stdin(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_bytes(b"abc\nq")
    done = minivm("run", firmware("uart_echo"), "--input", keys, input=b"zzz\nq")
    assert done.stdout == ECHO_ABC
    assert done.returncode == 0


def test_uart_echo_missing_input_file_is_a_one_line_error(tmp_path):
    missing = tmp_path / "missing.txt"
    done = minivm("run", firmware("uart_echo"), "--input", missing)
    assert done.returncode == 2
    assert done.stderr.decode() == f"minivm: {missing}: {os.strerror(2)}\n"
    assert done.stdout == b""


@pytest.mark.parametrize("stdin", [None, b""], ids=["devnull", "empty-pipe"])
def test_end_of_input_is_not_an_error_for_a_guest_that_needs_none(stdin):
    done = minivm("run", "hello", input=stdin)
    assert done.stderr == b""
    assert (done.stdout, done.returncode) == oracle.golden(firmware("hello"))
    assert done.returncode == 0
