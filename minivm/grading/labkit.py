"""What a lab's tests use: the student's module, at arm's length.

    from minivm.grading import labkit

    def test_magic():
        hashdev = labkit.load("hashdev.py")        # a fresh process runs the student's file
        device = hashdev.HashDevice()              # a handle: the object stays over there
        assert device.read(0x00, 4) == 0x48534148  # a call there; a plain int back here

`load` starts the student's module in a process of its own (sandbox.py)
and gives back a proxy: attribute reads, calls and method calls travel over a
pipe, and only plain data comes back (None, bool, int, float, str, bytes,
bytearray, lists, tuples, dicts) or a proxy for an object that stays in the
student's process.  A bytearray passed as an argument is copied there and its
new contents copied back after the call.  The assertions run here, in the
test's process, which the student's code cannot reach: patching the grader
from a submission patches a copy nobody looks at.

Everything the student's code can do wrong becomes a SubmissionError with a
message for the student: an exception (with its type, message and the lines
of the student's file it came through), a call that does not return in time
(SubmissionTimeout), a process that dies (SubmissionCrashed), more output
than the grader keeps (SubmissionOutputLimit).

The student's process is a fresh `python -S -m minivm.grading.sandbox` when
you run the tests yourself.  In the grader it is forked by the judge's
spawner (spawner.py) into the slot's jail (jail.py: its own user id,
namespaces, limits), which the judge finds described in $MINIVM_GRADE_JAIL.

Where the submission is: $MINIVM_SUBMISSION when set (the grader sets it; so
can you), else the lab's starter/ folder next to the tests.  Locally:

    pytest labs/trap-and-emulate/tests                       # tests starter/
    MINIVM_SUBMISSION=my/work pytest labs/trap-and-emulate/tests
"""
import atexit
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from minivm.devices.device import Device
from minivm.grading import jail as jails
from minivm.grading import sandbox

OUTPUT_LIMIT = 64 * 1024        # bytes a submission may print in one test
OUTPUT_KEPT = 4 * 1024          # of which the first this many are shown
DEFAULT_CALL_TIMEOUT = 10.0     # seconds, when the grader set no deadline
DEADLINE_MARGIN = 0.75          # seconds kept back to report a timeout cleanly

_live = []                      # every Submission started in this process


# -- settings the grader passes down (environment) ---------------------------------------

def _env_float(name, default=None):
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        return default


def max_insns(default=50_000_000):
    """The guest instruction budget for machines a test runs ($MINIVM_LAB_MAX_INSNS)."""
    value = _env_float("MINIVM_LAB_MAX_INSNS")
    return int(value) if value else default


def deadline():
    """time.monotonic() by which this test must be done, or None."""
    return _DEADLINE


def set_deadline(when):
    """The grader's judge sets each test's deadline (time.monotonic())."""
    global _DEADLINE
    _DEADLINE = when


_DEADLINE = None
_JAIL = jails.from_environment()
_judge_work = None
_SPAWNER = None


def start_spawner():
    """In the judge, before any lab test is imported: submission processes are
    forked from then on (minivm/grading/spawner.py), not started afresh."""
    global _SPAWNER
    from minivm.grading.spawner import Spawner
    _SPAWNER = Spawner(_JAIL)


def judge_folder():
    """A fresh folder for the test's own files (the reference's disk image):
    mode 0700, the grader's user, outside the jail's view, so the student's
    processes can neither read them nor plant a link where they will be."""
    folder = tempfile.mkdtemp(prefix="judge-", dir=_judge_work)
    atexit.register(shutil.rmtree, folder, True)
    return folder


def set_judge_work(folder):
    """Where judge_folder() makes its folders (the grader's judge sets its own)."""
    global _judge_work
    _judge_work = folder


def submission_dir(test_file=None):
    """The folder holding the student's files."""
    folder = os.environ.get("MINIVM_SUBMISSION")
    if folder:
        return os.path.abspath(folder)
    if test_file is None:
        test_file = _caller_file()
    lab = os.path.dirname(os.path.dirname(os.path.abspath(test_file)))
    return os.path.join(lab, "starter")


def lab_dir(test_file):
    """The lab folder a test file belongs to (tests/ and hidden/ are inside it)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(test_file)))


def _caller_file():
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else os.getcwd()


# -- errors -----------------------------------------------------------------------------------


class SubmissionError(Exception):
    """Something the student's code did: raised in the test's process."""

    def __init__(self, message, type_name=None, type_names=(), detail="", traceback=""):
        super().__init__(message)
        self.type_name = type_name          # the exception's class name, if one was raised
        self.type_names = tuple(type_names)  # ... and its bases' names
        self.detail = detail                # the exception's own message
        self.traceback = traceback          # where, in the student's files

    def is_a(self, name):
        """Was it an exception of a class called `name` (or derived from one)?"""
        return name in self.type_names


class SubmissionTimeout(SubmissionError):
    pass


class SubmissionCrashed(SubmissionError):
    pass


class SubmissionOutputLimit(SubmissionError):
    pass


class Partial(Exception):
    """Raise from a test to give part of its points: Partial(0.5, "half the rings")."""

    def __init__(self, fraction, message=""):
        super().__init__(message)
        self.fraction = max(0.0, min(1.0, float(fraction)))


# -- the proxy ---------------------------------------------------------------------------------


class Remote:
    """An object in the student's process.  Attribute reads and calls go there."""

    __slots__ = ("_rpc_owner", "_rpc_handle", "_rpc_type", "_rpc_label")

    def __init__(self, owner, handle, type_name, label):
        object.__setattr__(self, "_rpc_owner", owner)
        object.__setattr__(self, "_rpc_handle", handle)
        object.__setattr__(self, "_rpc_type", type_name)
        object.__setattr__(self, "_rpc_label", label)

    def __getattr__(self, name):
        if name.startswith(("__", "_rpc_")):
            raise AttributeError(name)
        label = f"{self._rpc_label}.{name}"
        return self._rpc_owner._request({"op": "getattr", "h": self._rpc_handle, "n": name},
                                        label, label=label)

    def __setattr__(self, name, value):
        self._rpc_owner._request({"op": "setattr", "h": self._rpc_handle, "n": name,
                                  "v": value}, f"setting {self._rpc_label}.{name}")

    def __call__(self, *args, **kwargs):
        return self._rpc_owner._request({"op": "call", "h": self._rpc_handle, "a": list(args),
                                         "k": kwargs},
                                        lambda: f"{self._rpc_label}({_show(args)})")

    def __repr__(self):
        return f"<{self._rpc_type} {self._rpc_label} in the submission's process>"


def method(remote, name):
    """A callable for remote.name(...) that costs one round trip (not two)."""
    owner, handle, label = remote._rpc_owner, remote._rpc_handle, remote._rpc_label

    def call(*args, **kwargs):
        what = lambda: f"{label}.{name}({_show(args)})"       # noqa: E731
        if not kwargs and len(args) <= sandbox.MAX_FAST_ARGS and all(
                type(arg) is bool or type(arg) is int and 0 <= arg < 1 << 64 for arg in args):
            return owner._fast(handle, name, args, what)
        return owner._request({"op": "callm", "h": handle, "n": name, "a": list(args),
                               "k": kwargs}, what)
    return call


def _show(args):
    shown = []
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool):
            shown.append(hex(arg) if arg >= 0x10000 else str(arg))
        elif isinstance(arg, (bytes, bytearray)):
            shown.append(f"<{len(arg)} bytes>")
        else:
            text = repr(arg)
            shown.append(text if len(text) < 40 else text[:37] + "...")
    return ", ".join(shown)


class time_limit:
    """`with labkit.time_limit(2):` calls inside must each return within 2 s."""
    current = None

    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        self.saved, time_limit.current = time_limit.current, self.seconds
        return self

    def __exit__(self, *exc):
        time_limit.current = self.saved
        return False


class _Failure(Exception):
    """Raised inside Submission; turned into a SubmissionError that names the call."""

    def __init__(self, kind, text, **fields):
        super().__init__(text)
        self.kind, self.text, self.fields = kind, text, fields

    def error(self, what):
        return self.kind(self.text.replace("{what}", what, 1), **self.fields)


class Submission:
    """One student module, imported in a process of its own."""

    def __init__(self, filename, folder=None, memory_mb=None):
        self.filename = filename
        self.folder = os.path.abspath(folder or submission_dir())
        self.name = os.path.splitext(os.path.basename(filename))[0]
        self.dead = None                # why the process is gone, once it is
        self.output = bytearray()       # the first OUTPUT_KEPT bytes it printed
        self.output_total = 0
        self._buffer = bytearray()
        self._start(memory_mb)
        _live.append(self)
        self.module = self._request({"op": "import", "file": filename, "name": self.name},
                                    f"importing {filename}", label=self.name)

    # -- the process --------------------------------------------------------------------------

    def _start(self, memory_mb):
        request_r, self._request_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        self._output_r, output_w = os.pipe()
        os.set_blocking(self._output_r, False)
        memory = memory_mb or _env_float("MINIVM_LAB_MEMORY_MB") or 2048
        limit = deadline()
        cpu = int(max(5, limit - time.monotonic() + 5)) if limit else None
        settings = {"submission_dir": self.folder, "memory_mb": int(memory),
                    "cpu_seconds": cpu, "parent": os.getpid()}
        if _JAIL:
            jails.hand_over(_JAIL)
        try:
            if _SPAWNER:
                self.process = _SPAWNER.spawn(settings, sandbox_environment(self.folder),
                                              request_r, reply_w, output_w)
            else:
                self.process = subprocess.Popen(
                    [jails.python(), "-S", "-P", "-m", "minivm.grading.sandbox", str(request_r),
                     str(reply_w), sandbox.json.dumps(settings)],
                    stdin=subprocess.DEVNULL, stdout=output_w, stderr=output_w,
                    pass_fds=(request_r, reply_w), cwd="/",
                    env=sandbox_environment(self.folder), start_new_session=True,
                    preexec_fn=(lambda: jails.enter(_JAIL)) if _JAIL else None)
        finally:
            os.close(request_r)
            os.close(reply_w)
            os.close(output_w)
        self._poller = select.poll()
        self._poller.register(self._reply_r, select.POLLIN)
        self._poller.register(self._output_r, select.POLLIN)

    def close(self):
        """Stop the process (it is stopped at exit in any case)."""
        if self.dead is None:
            self.dead = "closed"
        try:                  # its session: what it started and left in it, too
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:
            pass
        self.process.wait()
        for fd in (self._request_w, self._reply_r, self._output_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self._request_w = self._reply_r = self._output_r = -1

    def _stop(self, why):
        self.dead = why
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._drain_output()

    # -- requests --------------------------------------------------------------------------------

    def _request(self, message, what, label=None):
        """Send one request, wait for its reply, return the value it carries.
        `what` (a string, or a function making one: formatting costs time on
        the hot path) names the call in error messages."""
        try:
            return self._exchange(message, label)
        except _Failure as failure:
            raise failure.error(what() if callable(what) else what) from None

    def _fast(self, handle, name, args, what):
        """A method call with integer arguments, in the compact encoding."""
        try:
            return self._send(sandbox.pack_fast_call(handle, name, args), (), None)
        except _Failure as failure:
            raise failure.error(what()) from None

    def _exchange(self, message, label):
        blobs, arrays = [], []
        message = dict(message)
        for key in ("a", "v"):
            if key in message:
                message[key] = self._encode(message[key], blobs, arrays)
        if message.get("k"):
            message["k"] = {str(k): self._encode(v, blobs, arrays)
                            for k, v in message["k"].items()}
        else:
            message.pop("k", None)
        return self._send(sandbox.pack(message, blobs), arrays, label)

    def _send(self, frame, arrays, label):
        if self.dead is not None:
            raise _Failure(SubmissionCrashed, "{what}: the submission's process was already "
                           f"stopped ({self.dead})")
        try:
            sandbox._write_all(self._request_w, frame)
        except OSError:
            self._stop("its process ended")
            raise self._crashed() from None
        reply, reply_blobs = self._wait()
        if "error" in reply:
            raise self._error(reply["error"])
        try:
            value = sandbox.decode(reply["ok"], reply_blobs, self._handle_maker(label))
            back = [sandbox.decode(item, reply_blobs, self._handle_maker(None))
                    for item in reply.get("back", ())]
        except (sandbox.WireError, KeyError, TypeError, RecursionError) as error:
            self._stop("it sent back something unreadable")
            raise _Failure(SubmissionError, "{what}: the submission sent back something the "
                           f"grader cannot read ({error})") from None
        if len(back) != len(arrays):
            raise _Failure(SubmissionError, "{what}: bytearray arguments did not come back")
        for array, new in zip(arrays, back):
            if not isinstance(new, (bytes, bytearray)) or len(new) != len(array):
                raise _Failure(SubmissionError, "{what}: a bytearray argument came back resized")
            array[:] = new
        return value

    def _encode(self, value, blobs, arrays):
        kind = type(value)
        if kind is int or kind is str or kind is bool or value is None or kind is float:
            return value
        if isinstance(value, Remote):
            if value._rpc_owner is not self:
                raise TypeError("a proxy from another submission process")
            return {"h": value._rpc_handle}
        if isinstance(value, bytearray):
            arrays.append(value)
        if isinstance(value, (list, tuple)):
            encoded = [self._encode(item, blobs, arrays) for item in value]
            return encoded if isinstance(value, list) else {"t": encoded}
        if isinstance(value, dict):
            return {"d": [[self._encode(k, blobs, arrays), self._encode(v, blobs, arrays)]
                          for k, v in value.items()]}
        return sandbox.encode(value, blobs)

    def _handle_maker(self, label):
        def make(number, type_name):
            return Remote(self, number, type_name, label or type_name)
        return make

    def _wait(self):
        """The next reply frame, draining and capping output meanwhile."""
        seconds = time_limit.current
        if _DEADLINE is not None:
            left = _DEADLINE - time.monotonic() - DEADLINE_MARGIN
            seconds = left if seconds is None else min(seconds, left)
        if seconds is None:
            seconds = DEFAULT_CALL_TIMEOUT
        seconds = max(seconds, 0.05)
        stop_at = time.monotonic() + seconds
        while True:
            try:
                size = sandbox.frame_length(self._buffer, fast_reply=True)
            except sandbox.WireError as error:
                self._stop("it sent a malformed reply")
                raise _Failure(SubmissionError, "{what}: the submission sent a malformed "
                               f"reply ({error})") from None
            if size is not None:
                frame = bytes(self._buffer[:size])
                del self._buffer[:size]
                self._drain_output()
                self._check_output()
                try:
                    return sandbox.unpack(frame, fast_reply=True)
                except sandbox.WireError as error:
                    self._stop("it sent a malformed reply")
                    raise _Failure(SubmissionError, "{what}: the submission sent a malformed "
                                   f"reply ({error})") from None
            left = stop_at - time.monotonic()
            if left <= 0:
                self._stop("a call did not return in time")
                raise _Failure(SubmissionTimeout, "{what} did not return within "
                               f"{seconds:.1f} s (an infinite loop?)")
            for fd, _ in self._poller.poll(max(1, int(left * 1000))):
                if fd == self._output_r:
                    self._drain_output()
                    self._check_output()
                    continue
                chunk = os.read(self._reply_r, 1 << 16)
                if not chunk:
                    self._stop("its process ended")
                    raise self._crashed()
                self._buffer += chunk

    def _drain_output(self):
        while self._output_r >= 0 and self.output_total <= OUTPUT_LIMIT:
            try:
                chunk = os.read(self._output_r, 1 << 16)
            except OSError:           # BlockingIOError: nothing more for now
                return
            if not chunk:
                return
            self.output_total += len(chunk)
            room = OUTPUT_KEPT - len(self.output)
            if room > 0:
                self.output += chunk[:room]

    def _check_output(self):
        if self.output_total > OUTPUT_LIMIT and self.dead is None:
            self._stop("it printed too much")
            raise _Failure(SubmissionOutputLimit, "{what}: your code printed more than "
                           f"{OUTPUT_LIMIT // 1024} KiB (stopped at {self.output_total} "
                           "bytes); remove debugging prints before submitting")

    def _crashed(self):
        code = self.process.poll()
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = {"SIGXCPU": " (out of CPU time)", "SIGXFSZ": " (a file grew too large)",
                   "SIGSEGV": " (a crash: out of memory?)",
                   "SIGKILL": " (over its memory limit?)"}.get(name, "")
            reason = f"was killed by {name}{how}"
        else:
            reason = f"exited with status {code}"
        tail = self.output[-600:].decode(errors="replace").strip()
        shown = f"; it printed: {tail}" if tail else ""
        return _Failure(SubmissionCrashed,
                        "{what}: the submission's process " + f"{reason}{shown}")

    def _error(self, error):
        if not isinstance(error, dict):
            return _Failure(SubmissionError, "{what} failed")
        type_name = str(error.get("type", "?"))[:100]
        detail = str(error.get("message", ""))[:sandbox.MAX_MESSAGE]
        where = str(error.get("traceback", ""))[-sandbox.MAX_TRACEBACK:]
        mro = error.get("mro")
        names = [str(name)[:100] for name in mro][:20] if isinstance(mro, list) else [type_name]
        text = f"raised {type_name}" + (f": {detail}" if detail else "")
        if where.strip():
            text += "\n" + where.rstrip()
        return _Failure(SubmissionError, "{what} " + text,
                        type_name=type_name, type_names=names, detail=detail, traceback=where)


def load(filename, folder=None, memory_mb=None):
    """The student's module `filename`, running in a new process of its own."""
    return Submission(filename, folder or submission_dir(_caller_file()), memory_mb).module


def outputs():
    """What every submission process of this test printed (first 4 KiB each)."""
    return [(s.filename, bytes(s.output), s.output_total) for s in _live]


def close_all():
    while _live:
        _live.pop().close()


atexit.register(close_all)


def python_path():
    """PYTHONPATH for a child started with `python -S`: minivm's folder, then
    everything this process can import from.  -S skips the site module and
    its .pth files (a good part of Python's start-up time), so the paths they
    add are passed on explicitly."""
    import minivm
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minivm.__file__)))
    folders = [package_root]
    # sys.path[0] is the script's folder or, under `python -m`, the working
    # folder: perhaps a submission's, so never passed on.
    for folder in sys.path[0 if sys.flags.safe_path else 1:]:
        if folder and os.path.isabs(folder) and os.path.isdir(folder) and folder not in folders:
            folders.append(folder)
    return os.pathsep.join(folders)


def sandbox_environment(folder):
    """A small, fixed environment for the student's process."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": folder,
           "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPYCACHEPREFIX": jails.bytecode_cache("submissions") if _JAIL else "",
           "PYTHONPATH": python_path(), "PYTHONIOENCODING": "utf-8",
           "MINIVM_CACHE_DIR": os.path.join(folder, ".minivm-cache")}
    if "MINIVM_PURE" in os.environ:
        env["MINIVM_PURE"] = os.environ["MINIVM_PURE"]
    return env


# -- devices: a student's device model on a real machine ------------------------------------------


class RemoteDevice(Device):
    """A device on minivm's bus whose registers are answered by the student's
    object: each guest access is one trap here and one call over there."""

    def __init__(self, remote, size=0x1000, registers=None, names=None):
        """remote: the student's device (a proxy).  registers: offset -> name,
        for the trace and --stats.  names(offset) may name registers instead."""
        super().__init__()
        self.size = size
        self.REGISTERS = dict(registers or {})
        self._names = names
        self._read = method(remote, "read")
        self._write = method(remote, "write")
        self._reset = method(remote, "reset")

    def read(self, offset, size):
        value = self._read(offset, size)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SubmissionError(f"read(0x{offset:x}, {size}) returned {value!r}, "
                                  f"not an integer")
        return value & ((1 << (8 * size)) - 1)

    def write(self, offset, size, value):
        self._write(offset, size, value)

    def reset(self):
        self._reset()

    def register_name(self, offset, is_write, bank=None):
        if self._names is not None:
            return self._names(offset)
        return super().register_name(offset, is_write, bank)


def attach(machine, name, base, device):
    """Put a device on a machine's bus at `base` after it was built: the bus
    routes the guest's accesses there to device.read/write, and --stats and
    the trace show them under `name`."""
    machine.bus.add_device(name, base, device)
    machine.devices[name] = device
    return device


def firmware(name):
    """A built-in firmware image of minivm (firmware/NAME.elf)."""
    from minivm.cli import firmware_path
    return firmware_path(name)
