"""Where results go: a file, stdout (`-`), or through a device, FIFO or link.

Nothing is ever replaced that is not a regular file: a device or a FIFO is
written through (a FIFO nobody reads is refused), a symlink's target is
written (the link stays), a folder is refused.  Text is always valid UTF-8.
"""
import errno
import json
import os
import stat
import sys
import tempfile

from minivm.errors import MinivmError


def clean_text(text):
    """text made valid UTF-8: a lone surrogate (from a file name or a
    submission's message) becomes '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


def clean(value):
    """value with every string in it made valid UTF-8."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(item) for item in value]
    return value


def check(path, option="--output"):
    """Refuse, before any grading, an output that cannot be written."""
    if path == "-":
        return
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise MinivmError(f"{option} {path}: is a folder (name a file)")
    if not os.path.isdir(os.path.dirname(real)):
        raise MinivmError(f"{option} {path}: no such folder {os.path.dirname(real)}")


def write(path, text):
    """Write text (UTF-8) to path as this module's docstring says."""
    data = clean_text(text).encode("utf-8")
    try:
        if path == "-":
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return
        real = os.path.realpath(path)
        if os.path.exists(real) and not stat.S_ISREG(os.stat(real).st_mode):
            _write_through(real, data)
            return
        temporary = f"{real}.tmp{os.getpid()}"
        with open(temporary, "wb") as stream:
            stream.write(data)
        os.replace(temporary, real)
    except OSError as error:
        raise MinivmError(f"cannot write {path}: {error.strerror}") from None


def _write_through(path, data):
    """Into a device or FIFO (a FIFO that no one reads is refused, not waited for)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ENXIO:
            raise MinivmError(f"cannot write {path}: a FIFO that no one reads") from None
        raise
    try:
        os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_json_file(path, data):
    """A batch's NAME/results.json, in a folder the submission filled: the
    temporary file gets a fresh name (O_EXCL, never through a planted link or
    FIFO) and the rename refuses to replace anything but a regular file."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise MinivmError(f"cannot write {path}: it is not a regular file")
    except FileNotFoundError:
        pass
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".results-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(dumps(data))
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def dumps(data):
    return json.dumps(clean(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
