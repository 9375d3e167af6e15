"""The submission's process: a student's module, served over two pipes.

The grader never runs a student's code in a process that decides anything.
A lab test (trusted, in the grader's judge process: minivm/grading/plugin.py)
asks for the student's module with `labkit.load("hashdev.py")`; labkit starts
this module as a separate process (in the grader: inside the slot's jail,
minivm/grading/jail.py):

    python -S -m minivm.grading.sandbox REQUEST_FD REPLY_FD SETTINGS_JSON

which limits itself (memory, CPU time, file size), imports the student's
file and then answers requests: get an attribute, call a function or a
method, set an attribute.  Replies carry plain data only (None, bool, int,
float, str, bytes, lists, tuples, dicts) or a *handle* that names an object
that stays here.  So the test side only ever sees values, never code: a
submission that imports and patches the grader, the runner or this module
changes its own process and nothing else, and whatever it sends back is
checked by the test, in the test's process.

Wire format, both ways: a frame is

    u32 length of the JSON part, u32 number of blobs, the JSON (UTF-8),
    then each blob as u32 length + bytes

Values inside the JSON are JSON scalars and lists, or one-key objects:
{"t": [...]} a tuple, {"d": [[k, v], ...]} a dict, {"b": i} bytes (blob i),
{"ba": i} a bytearray (passed in and copied back out after the call),
{"h": n} a handle (with "r": the type's name, when sent back).
"""
import json
import os
import struct
import sys

HEADER = struct.Struct("<II")
# Fast calls: a method call with integer arguments whose result is an integer
# or None (a device register access), without JSON.  Request: FAST, u32
# handle, u8 name length, name, u8 argument count, u8 which arguments are
# bools (bit n: argument n), u64 each.  Reply: FAST,
# u8 kind (0 None, 1 an integer), u64 value; any other outcome (an exception,
# another type) is a normal frame.
FAST = 0xFFFFFFFF
FAST_REPLY = struct.Struct("<IBQ")
MAX_FAST_ARGS = 8
MAX_FRAME = 4 << 20              # bytes in one frame, JSON and blobs together (the labs'
                                 # largest is 131,134: a 128 KiB RAM copy); the judge
                                 # decodes it in one call no alarm interrupts
MAX_DEPTH = 64                   # nesting of lists/tuples/dicts in one value
MAX_MESSAGE = 4000               # characters of an exception's message sent back
MAX_TRACEBACK = 6000


class WireError(Exception):
    """A frame that breaks the format (too large, truncated, not JSON)."""


# -- encoding and decoding ----------------------------------------------------------


def encode(value, blobs, handles=None, depth=0):
    """A JSON-able form of value; bytes go to blobs.  Objects that are not
    plain data become handles when `handles` (a registry) is given."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if type(value) not in (bool, int, float, str, type(None)):
            value = _plain(value)     # an int or str subclass: its plain value
        return value
    if depth < MAX_DEPTH:
        if isinstance(value, bytearray):
            blobs.append(bytes(value))
            return {"ba": len(blobs) - 1}
        if isinstance(value, (bytes, memoryview)):
            blobs.append(bytes(value))
            return {"b": len(blobs) - 1}
        if type(value) is list:
            return [encode(item, blobs, handles, depth + 1) for item in value]
        if isinstance(value, tuple) and (type(value) is tuple or hasattr(value, "_fields")):
            return {"t": [encode(item, blobs, handles, depth + 1) for item in value]}
        if type(value) is dict:
            return {"d": [[encode(k, blobs, handles, depth + 1),
                           encode(v, blobs, handles, depth + 1)] for k, v in value.items()]}
    if handles is None:
        raise TypeError(f"cannot send a {type(value).__name__} to the submission")
    return {"h": handles.add(value), "r": _type_name(value)}


def _plain(value):
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _type_name(value):
    try:
        return str(type(value).__name__)[:100]
    except Exception:
        return "?"


def decode(value, blobs, on_handle, on_bytearray=None, depth=0):
    """The inverse of encode.  on_handle(number, type_name) makes whatever
    stands for a handle; on_bytearray(bytearray, index) hears of each one."""
    if depth > MAX_DEPTH + 2:
        raise WireError("value nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(item, blobs, on_handle, on_bytearray, depth + 1) for item in value]
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise WireError("malformed value")
    if "t" in value:
        return tuple(decode(item, blobs, on_handle, on_bytearray, depth + 1)
                     for item in _list(value["t"]))
    if "d" in value:
        result = {}
        for pair in _list(value["d"]):
            if not isinstance(pair, list) or len(pair) != 2:
                raise WireError("malformed dict")
            key = decode(pair[0], blobs, on_handle, on_bytearray, depth + 1)
            try:
                result[key] = decode(pair[1], blobs, on_handle, on_bytearray, depth + 1)
            except TypeError:
                raise WireError("unhashable dict key") from None
        return result
    if "b" in value:
        return bytes(_blob(blobs, value["b"]))
    if "ba" in value:
        array = bytearray(_blob(blobs, value["ba"]))
        if on_bytearray is not None:
            on_bytearray(array, value["ba"])
        return array
    if "h" in value:
        number = value["h"]
        if type(number) is not int:
            raise WireError("malformed handle")
        name = value.get("r", "?")
        return on_handle(number, name if isinstance(name, str) else "?")
    raise WireError("malformed value")


def _list(value):
    if not isinstance(value, list):
        raise WireError("malformed value")
    return value


def _blob(blobs, index):
    if type(index) is not int or not 0 <= index < len(blobs):
        raise WireError("bad blob index")
    return blobs[index]


def pack(message, blobs=()):
    text = json.dumps(message, separators=(",", ":")).encode()
    parts = [HEADER.pack(len(text), len(blobs)), text]
    for blob in blobs:
        parts.append(struct.pack("<I", len(blob)))
        parts.append(blob)
    return b"".join(parts)


def unpack(frame, fast_reply=False):
    """(message, blobs) from one whole frame (bytes after the 8-byte header too)."""
    if len(frame) < HEADER.size:
        raise WireError("truncated frame")
    length, count = HEADER.unpack_from(frame)
    if length == FAST:
        if fast_reply:
            if len(frame) != FAST_REPLY.size:
                raise WireError("malformed fast reply")
            _, kind, value = FAST_REPLY.unpack(frame)
            if kind > 1:
                raise WireError("malformed fast reply")
            return {"ok": value if kind else None}, []
        handle = count
        name_end = 9 + frame[8]
        name = frame[9:name_end].decode(errors="replace")
        nargs, bools = frame[name_end], frame[name_end + 1]
        args = list(struct.unpack_from(f"<{nargs}Q", frame, name_end + 2))
        for n in range(nargs):
            if bools >> n & 1:
                args[n] = bool(args[n])
        return {"op": "fast", "h": handle, "n": name, "a": args}, []
    position = HEADER.size + length
    try:
        message = json.loads(frame[HEADER.size:position])
    except (ValueError, RecursionError) as error:
        raise WireError(f"not JSON: {error}") from None
    blobs = []
    for _ in range(count):
        if position + 4 > len(frame):
            raise WireError("truncated frame")
        (size,) = struct.unpack_from("<I", frame, position)
        position += 4
        blobs.append(frame[position:position + size])
        position += size
    if position != len(frame):
        raise WireError("frame length does not match its contents")
    return message, blobs


def pack_fast_call(handle, name, args):
    encoded = name.encode()
    bools = sum(1 << n for n, arg in enumerate(args) if type(arg) is bool)
    return (struct.pack("<IIB", FAST, handle, len(encoded)) + encoded
            + struct.pack(f"<BB{len(args)}Q", len(args), bools, *map(int, args)))


def frame_length(buffer, fast_reply=False):
    """The length of the first frame in buffer, None if not all of it is there."""
    if len(buffer) < HEADER.size:
        return None
    length, count = HEADER.unpack_from(buffer)
    if length == FAST:
        if fast_reply:
            return FAST_REPLY.size if len(buffer) >= FAST_REPLY.size else None
        position = 9 + buffer[8]
        if len(buffer) < position + 1:
            return None
        if buffer[position] > MAX_FAST_ARGS:
            raise WireError("too many arguments")
        position += 2 + 8 * buffer[position]
        return position if len(buffer) >= position else None
    position = HEADER.size + length
    if position > MAX_FRAME or count > MAX_FRAME // 4:
        raise WireError(f"frame too large ({position} bytes)")
    for _ in range(count):
        if len(buffer) < position + 4:
            return None
        (size,) = struct.unpack_from("<I", buffer, position)
        position += 4 + size
        if position > MAX_FRAME:
            raise WireError(f"frame too large ({position} bytes)")
    return position if len(buffer) >= position else None


# -- the server (runs in the submission's process) --------------------------------------


class Handles:
    def __init__(self):
        self.objects = {}
        self.next = 1

    def add(self, value):
        number = self.next
        self.next += 1
        self.objects[number] = value
        return number

    def get(self, number, _name=None):
        try:
            return self.objects[number]
        except KeyError:
            raise LookupError(f"no object #{number} (stale handle)") from None


class FrameReader:
    """Whole frames from a pipe, read in as few system calls as possible."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = bytearray()

    def next(self):
        while True:
            size = frame_length(self.buffer)
            if size is not None:
                frame = bytes(self.buffer[:size])
                del self.buffer[:size]
                return unpack(frame)
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise EOFError
            self.buffer += chunk


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _describe_error(error, submission_dir):
    import traceback
    try:
        message = str(error)
    except BaseException:
        message = "<the exception could not be printed>"
    names = []
    try:
        for kind in type(error).__mro__:
            names.append(str(kind.__name__))
    except BaseException:
        names = ["?"]
    text = ""
    try:
        frames = [frame for frame in traceback.extract_tb(error.__traceback__)
                  if frame.filename.startswith(submission_dir)]
        lines = traceback.format_list(frames[-8:])
        text = "".join(lines).replace(submission_dir + os.sep, "")
    except BaseException:
        pass
    return {"type": names[0] if names else "?", "mro": names[:20],
            "message": message[:MAX_MESSAGE], "traceback": text[-MAX_TRACEBACK:]}


def _limit_self(settings):
    import resource
    memory = settings.get("memory_mb")
    if memory:
        limit = int(memory) << 20
        if settings.get("forked"):
            # A fork starts with its spawner's address space (Unicorn's code and
            # more): the limit is on what it adds to that.
            with open("/proc/self/statm") as statm:
                limit += int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cpu = settings.get("cpu_seconds")
    if cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (int(cpu), int(cpu) + 1))
    file_size = settings.get("file_size_mb", 256) << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:        # die with the test's process, even if it is killed outright
        import ctypes
        import signal
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != settings.get("parent"):
            os._exit(1)
    except (OSError, AttributeError):
        pass


def _import(path, name, submission_dir):
    import importlib.util
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{os.path.basename(path)} is not in the submission")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def serve(request_fd, reply_fd, settings):
    submission_dir = os.path.realpath(settings["submission_dir"])
    _limit_self(settings)
    os.chdir(submission_dir)
    sys.dont_write_bytecode = True
    sys.path.insert(0, submission_dir)
    try:                        # started with -S: give students exit() and quit() anyway
        import builtins
        import _sitebuiltins
        builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
        builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    except ImportError:
        pass
    handles = Handles()
    streams = (sys.stdout, sys.stderr)

    def flush():
        for stream in streams:
            try:
                stream.flush()
            except BaseException:
                pass

    reader = FrameReader(request_fd)
    while True:
        try:
            message, blobs = reader.next()
        except (EOFError, OSError, WireError):
            os._exit(0)
        if message.get("op") == "fast":
            try:
                result = getattr(handles.get(message["h"]), message["n"])(*message["a"])
                if result is None or (type(result) is int and 0 <= result < 1 << 64):
                    flush()
                    _write_all(reply_fd, FAST_REPLY.pack(FAST, result is not None,
                                                         result or 0))
                    continue
                message = {"op": "done", "result": result}
            except BaseException as error:      # noqa: B902 - sent back as data
                message = {"op": "failed", "error": error}
        arrays = []
        reply_blobs = []
        try:
            op = message["op"]

            def arg(value):
                return decode(value, blobs, handles.get,
                              lambda array, index: arrays.append(array))
            if op == "done":
                result = message["result"]
            elif op == "failed":
                raise message["error"]
            elif op == "import":
                result = _import(os.path.join(submission_dir, message["file"]),
                                 message["name"], submission_dir)
            elif op == "getattr":
                result = getattr(handles.get(message["h"]), message["n"])
            elif op == "setattr":
                setattr(handles.get(message["h"]), message["n"], arg(message["v"]))
                result = None
            elif op in ("call", "callm"):
                args = [arg(item) for item in message.get("a", [])]
                kwargs = {key: arg(item) for key, item in message.get("k", {}).items()}
                target = handles.get(message["h"])
                if op == "callm":
                    target = getattr(target, message["n"])
                result = target(*args, **kwargs)
            else:
                raise ValueError(f"unknown request {op!r}")
            try:
                value = encode(result, reply_blobs, handles)
                back = [encode(array, reply_blobs) for array in arrays]
            except RecursionError:
                reply_blobs = []
                value, back = {"h": handles.add(result), "r": _type_name(result)}, []
            reply = {"ok": value, "back": back}
        except SystemExit as error:
            reply = {"error": {"type": "SystemExit", "mro": ["SystemExit"],
                               "message": f"the submission called exit({error.code!r})",
                               "traceback": ""}}
            reply_blobs = []
        except BaseException as error:          # noqa: B902 - everything goes back as data
            reply = {"error": _describe_error(error, submission_dir)}
            reply_blobs = []
        flush()
        try:
            frame = pack(reply, reply_blobs)
        except (TypeError, ValueError, RecursionError) as error:
            frame = pack({"error": {"type": "WireError", "mro": ["WireError"],
                                    "message": f"the result cannot be sent back: {error}",
                                    "traceback": ""}})
        try:
            _write_all(reply_fd, frame)
        except OSError:
            os._exit(0)


def main():
    request_fd, reply_fd = int(sys.argv[1]), int(sys.argv[2])
    settings = json.loads(sys.argv[3])
    serve(request_fd, reply_fd, settings)


if __name__ == "__main__":
    main()
