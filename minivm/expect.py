"""Scripted input that types like a person: wait for the guest's output, then type.

    from minivm.expect import Expect
    script = Expect([("$ ", "ls\\n"), ("$ ", "usertests -q\\n"), ("ALL TESTS PASSED", None)])
    result = Machine("kernel", virtio_blk=["fs.img"], input=script).run()

    minivm run kernel --virtio-blk fs.img \\
        --expect '$ ' --send 'ls\\n' --expect '$ ' --send 'usertests -q\\n' \\
        --expect 'ALL TESTS PASSED'

Each step is (TEXT, KEYS): once the guest has printed TEXT (after what the
previous step matched, as expect(1) searches), KEYS are typed into the UART,
at the UART's pace in virtual time like any input, after keys still being
typed.  TEXT "" types at once.  KEYS
None ends the run as soon as TEXT is printed (exit status 0, as if the guest
had passed through the finisher): the end of a script for a guest that
never powers off, such as xv6.

Input given all at once (`--input FILE`, a pipe) arrives from virtual time
0, while a kernel may not be listening yet (interrupts off, a FIFO reset at
init).  A script does not: it types when the prompt is there.  Because the
guest's output comes at the same virtual time on every run, so do the keys:
scripted runs repeat exactly.
"""
import codecs
from collections import deque

from minivm.errors import MinivmError


def as_bytes(text):
    return text.encode() if isinstance(text, str) else bytes(text)


def steps_from_options(options):
    """The steps of `--expect TEXT` and `--send KEYS` options, given as
    (option, value) in command-line order.  A --send with no --expect before
    it types at once; an --expect with no --send after it just waits, or,
    last, ends the run.  Values take \\n, \\r, \\t, \\\\ and \\xNN escapes."""
    steps, text = [], None
    for option, value in options:
        value = _unescape(option, value)
        if option == "--expect":
            if text is not None:
                steps.append((text, b""))
            text = value
        else:
            steps.append((text or b"", value))
            text = None
    if text is not None:
        steps.append((text, None))
    return steps


def _unescape(option, value):
    try:
        return codecs.escape_decode(value.encode())[0]
    except ValueError as error:   # \xZZ, \x4, a trailing backslash
        raise MinivmError(f"{option} '{value}': {error} (escapes: \\n \\r \\t \\\\ \\xNN)") from None


class Expect:
    """An input source for Machine(input=...): steps of (TEXT, KEYS)."""

    interactive = False

    def __init__(self, steps):
        self.steps = deque((as_bytes(text), None if keys is None else as_bytes(keys))
                           for text, keys in steps)
        self.typing = bytearray()       # keys of matched steps, not yet typed
        self.seen = bytearray()         # output since the last match
        self.done = False               # a step with KEYS None matched: end the run
        self._match()

    @property
    def exhausted(self):
        """Nothing to type now: the script is over, or waits for output."""
        return not self.typing

    def next_byte(self, wait=False):
        """The next key to type (the machine asks only when not exhausted)."""
        return self.typing.pop(0)

    def observe(self, output):
        """The guest printed `output`.  True if that matched a step: keys
        are ready to type, or (done) the run should end."""
        if not self.steps:
            return False
        self.seen += output
        return self._match()

    def _match(self):
        matched = False
        while self.steps and self.steps[0][0] in self.seen:
            text, keys = self.steps.popleft()
            del self.seen[:self.seen.index(text) + len(text)]   # the rest is for the next step
            matched = True
            if keys is None:
                self.done = True
                return True
            self.typing += keys          # after any keys still being typed
        if self.steps:
            keep = len(self.steps[0][0]) - 1    # the longest tail that could begin a match
            del self.seen[:max(0, len(self.seen) - keep)]
        return matched
