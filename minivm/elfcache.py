"""Remember what pyelftools read from an ELF image, so the next run skips it.

Importing pyelftools takes about 40 ms, longer than Unicorn itself, and a
course runs the same few images thousands of times.  So the loader keeps
the parsed result (segments, entry point, symbols) in a small file named by
the SHA-256 of the image's bytes: a changed image gets a new name, so a
stale entry can never be used.  The cache is an optimisation only: if its
folder cannot be written, minivm parses every time and says nothing.

Folder: $MINIVM_CACHE_DIR, else $XDG_CACHE_HOME/minivm, else ~/.cache/minivm.
MINIVM_CACHE_DIR=off turns the cache off.

Entries are written with `marshal` (plain data only: loading one cannot run code).
"""
import hashlib
import marshal
import os
import stat

FORMAT = 1   # bump when the entry layout changes


def _folder():
    folder = os.environ.get("MINIVM_CACHE_DIR")
    if folder == "off":
        return None
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "minivm")
    return folder


def _entry_path(image):
    folder = _folder()
    if folder is None:
        return None
    return os.path.join(folder, f"elf-{FORMAT}-{hashlib.sha256(image).hexdigest()}.marshal")


def load(image):
    """(xlen, entry, segments, symbols) for this image, or None if not cached."""
    from minivm.loader import Segment, Symbols
    path = _entry_path(image)
    if path is None:
        return None
    try:
        parsed = marshal.loads(_read_entry(path))
    except (OSError, TypeError, ValueError, EOFError):
        return None   # not cached (or not readable): parse it
    if not _well_formed(parsed):
        return None   # the folder may be shared: a wrong entry is only a miss
    xlen, entry, segments, symbol_entries = parsed
    return xlen, entry, [Segment(*item) for item in segments], Symbols(symbol_entries)


def _read_entry(path):
    # Non-blocking and regular files only: a FIFO under an entry's name
    # must not make minivm wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        return stream.read()


def _well_formed(parsed):
    """Exactly what store() writes: plain numbers, bytes and strings."""
    def numbers(*values):
        return all(type(value) is int and value >= 0 for value in values)

    if type(parsed) is not tuple or len(parsed) != 4:
        return False
    xlen, entry, segments, symbols = parsed
    return (xlen in (32, 64) and numbers(entry) and type(segments) is list
            and type(symbols) is list
            and all(type(item) is tuple and len(item) == 4 and numbers(item[0], *item[2:])
                    and type(item[1]) is bytes for item in segments)
            and all(type(item) is tuple and len(item) == 3 and numbers(*item[:2])
                    and type(item[2]) is str for item in symbols))


def store(image, parsed):
    path = _entry_path(image)
    if path is None:
        return
    xlen, entry, segments, symbols = parsed
    data = marshal.dumps((xlen, entry, [tuple(s) for s in segments], symbols.entries))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path}.{os.getpid()}"
        with open(temporary, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)   # atomic: a concurrent reader never sees half a file
    except OSError:
        pass
