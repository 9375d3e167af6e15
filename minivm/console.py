"""The serial console: where the UART's output goes and its input comes from.

Output goes to a stream (the terminal) or is kept in memory (for tests and
the grader).  Input comes from a file (--input FILE), a pipe or file on
stdin (`minivm run echo < keys.txt`), or the terminal itself.

Determinism: the UART takes input bytes at a fixed pace in *virtual* time
(the instruction clock), whenever its receive FIFO has room.  From a file or
a pipe, the same bytes therefore arrive at the same guest instructions on
every run; waiting for a slow pipe only pauses the guest.  A terminal is
different: a person types when they like, so interactive runs are not
repeatable.  In a terminal, Ctrl-A X quits (as in QEMU) and Ctrl-A Ctrl-A
sends a Ctrl-A to the guest.
"""
import os
import sys

CTRL_A = 0x01


class Console:
    """The UART's far end: an output stream and an optional input source."""

    def __init__(self, stream=None, input_source=None):
        self.stream = stream
        self.captured = bytearray()
        self.input = input_source

    # -- output --------------------------------------------------------------------

    def write(self, data):
        if self.stream is None:
            self.captured += data
            return
        try:
            self.stream.write(data)
            if b"\n" in data:   # line-buffered: output appears as the guest writes lines
                self.stream.flush()
        except OSError as error:
            self._write_failed(error)

    def flush(self):
        if self.stream is not None:
            try:
                self.stream.flush()
            except OSError as error:
                self._write_failed(error)

    def _write_failed(self, error):
        self._reader_went_away()
        if not isinstance(error, BrokenPipeError):
            # A full disk, a closed terminal: the output is lost, so the run
            # must not look as if it went well.
            from minivm.errors import MinivmError
            raise MinivmError(f"standard output: {error.strerror}") from None

    def _reader_went_away(self):
        # `minivm run | head` closes the pipe early; like a real serial line
        # with nobody listening, the guest's bytes are dropped from then on.
        self.stream = open(os.devnull, "wb")
        try:
            os.dup2(self.stream.fileno(), sys.stdout.fileno())  # quiet interpreter exit
        except (OSError, ValueError):
            pass


class ByteInput:
    """Input from bytes, a file or a pipe: read in order, as the UART asks."""

    interactive = False

    def __init__(self, data=None, fd=None):
        self.buffer = bytearray(data or b"")
        self.fd = fd
        self.exhausted = fd is None and not self.buffer

    def next_byte(self, wait=True):
        """The next byte, or None at end of input.  Reading a pipe may wait."""
        if not self.buffer and self.fd is not None:
            chunk = os.read(self.fd, 4096)
            if chunk:
                self.buffer += chunk
            else:
                self.fd = None
        if not self.buffer:
            self.exhausted = True
            return None
        return self.buffer.pop(0)

    def read_all(self, limit):
        """All that is left, for a script that types it later; None if it is
        more than `limit` bytes (a stream such as /dev/zero never ends)."""
        while self.fd is not None and len(self.buffer) <= limit:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.fd = None
            self.buffer += chunk
        return bytes(self.buffer) if len(self.buffer) <= limit else None


class TerminalInput:
    """Keys typed at a terminal, read without waiting (raw mode while running)."""

    interactive = True
    exhausted = False

    def __init__(self, fd):
        self.fd = fd
        self.saved = None
        self.quit_requested = False
        self._escape = False

    def __enter__(self):
        import termios
        self.saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        mode[0] &= ~(termios.IXON | termios.ICRNL)     # keep Ctrl-S/Ctrl-Q, CR as typed
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        return self

    def __exit__(self, *exc):
        import termios
        termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
        return False

    def next_byte(self, wait=False):
        """The next key, or None if none was typed (waits only if `wait`)."""
        import select
        while True:
            ready, _, _ = select.select([self.fd], [], [], None if wait else 0)
            if not ready:
                return None
            key = os.read(self.fd, 1)[0]
            if self._escape:
                self._escape = False
                if key in (ord("x"), ord("X")):
                    self.quit_requested = True
                    return None
                if key == CTRL_A:
                    return CTRL_A
                continue
            if key == CTRL_A:
                self._escape = True
                continue
            return key


def input_from(path=None, stdin=None):
    """The input source for a run: --input PATH, else stdin (unless it is empty)."""
    if path is not None:
        # Read as the UART takes it, never whole: the file may be 4 GiB,
        # /dev/zero or a FIFO (one that nobody writes is at its end at once).
        from minivm import hostfiles
        fd, _ = hostfiles.open_host_file(path, what="input file", kinds=(
            hostfiles.REGULAR, hostfiles.BLOCK, hostfiles.STREAM))
        return ByteInput(fd=fd)
    if stdin is None:
        return None
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    if os.isatty(fd):
        return TerminalInput(fd)
    return ByteInput(fd=fd)
