"""The host files a user names on the command line, opened with care.

Firmware, disk images, passthrough files and --input are all opened here,
so each rule holds for every one of them:

- Never O_CREAT, never O_TRUNC: a mistyped name is an error, not a new file.
- Opened with O_NONBLOCK: opening a FIFO that nobody writes would otherwise
  wait forever.  Only then is the file's kind checked (a FIFO or /dev/zero
  is not a disk image), and blocking I/O is switched back on.
- Read-write only if the file's mode has a write bit.  root passes every
  access() check, but `chmod 444 disk.img` says "do not change this file".

An option that names a file takes comma-separated flags after the path
(`disk.img,ro`); a path containing a comma writes it twice, as QEMU does
(`my,,disk.img,ro` is the file `my,disk.img`, read-only).
"""
import errno
import os
import stat

from minivm.errors import MinivmError

REGULAR = "regular"    # a plain file
BLOCK = "block"        # a block device (/dev/loop0): has a size, can be mapped
STREAM = "stream"      # a FIFO, a terminal, a character device: read in order only


def kind_of(info):
    if stat.S_ISREG(info.st_mode):
        return REGULAR
    if stat.S_ISBLK(info.st_mode):
        return BLOCK
    if stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode):
        return STREAM
    return None


def may_write(path):
    """This process may write the file, and the file's mode has a write bit."""
    try:
        return bool(os.stat(path).st_mode & 0o222) and os.access(path, os.W_OK)
    except OSError:
        return False


def open_host_file(path, kinds=(REGULAR,), write=False, what="file"):
    """Open `path` for reading (or read-write): (fd, os.stat_result).

    kinds: what the file may be (REGULAR, BLOCK, STREAM); anything else is
    refused in one line, naming `what` the file was meant to be.
    """
    if write:
        _refuse_if_mode_is_read_only(path)
    flags = (os.O_RDWR if write else os.O_RDONLY) | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise MinivmError(f"{path}: {error.strerror}") from None
    info = os.fstat(fd)
    kind = kind_of(info)
    if kind not in kinds:
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise MinivmError(f"{path}: {os.strerror(errno.EISDIR)}")
        raise MinivmError(f"{path}: not a regular file, cannot be used as a {what}")
    os.set_blocking(fd, True)
    return fd, info


def _refuse_if_mode_is_read_only(path):
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return               # open() says why, in its own words
    if not mode & 0o222:
        raise MinivmError(f"{path}: read-only file (mode {stat.S_IMODE(mode):o})")


def size_of(fd, info):
    """Bytes in a regular file or a block device (whose stat size is 0)."""
    return os.lseek(fd, 0, os.SEEK_END) if stat.S_ISBLK(info.st_mode) else info.st_size


def split_option(text):
    """`PATH,flag,flag` -> (PATH, [flags]); `,,` is a comma inside the path."""
    parts = text.replace(",,", "\0").split(",")
    path, *flags = (part.replace("\0", ",") for part in parts)
    return path, flags
