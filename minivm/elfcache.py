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
    try:
        with open(path, "rb") as stream:
            xlen, entry, segments, symbol_entries = marshal.load(stream)
        symbols = Symbols()
        symbols.addresses = [address for address, _, _ in symbol_entries]
        symbols.entries = [tuple(item) for item in symbol_entries]
        return xlen, entry, [Segment(*item) for item in segments], symbols
    except (OSError, TypeError, ValueError, EOFError):
        return None   # not cached (or not readable): parse it


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
