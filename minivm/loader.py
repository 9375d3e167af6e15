"""Load a RISC-V ELF image into guest RAM (with pyelftools).

Only PT_LOAD segments matter, as for QEMU's `-kernel`: their file bytes are
copied to their physical address, the rest of their memory size is zeroed.
The symbol table is kept so the trace and the debugger can say `main+0x14`
instead of 0x80000054.
"""
import bisect
from collections import namedtuple

from minivm import elfcache as cache
from minivm.errors import MinivmError

# An ELF file larger than this is refused before it is read (a kernel with
# full debug information is a few hundred MiB).
MAX_IMAGE_BYTES = 512 << 20

# Each loadable segment is copied and zero-filled in turn, so a small file
# with thousands of overlapping segments of 128 MiB would take hours to
# load.  Real images have a handful (a kernel two to four); the ELF format
# allows 65535.
MAX_SEGMENTS = 64


class Symbols:
    """Function and object symbols, for turning addresses into names."""

    def __init__(self, entries=()):
        # Sorted once (a stable sort: symbols at one address keep the file's
        # order); inserting one by one was quadratic for a table in
        # descending order.
        self.entries = sorted(entries, key=lambda entry: entry[0])  # (address, size, name)
        self.addresses = [address for address, _, _ in self.entries]

    def lookup(self, address):
        """'name+0xoff' for the symbol covering address, or ''."""
        index = bisect.bisect(self.addresses, address) - 1
        if index < 0:
            return ""
        start, size, name = self.entries[index]
        if size and address >= start + size:
            return ""
        offset = address - start
        return f"{name}+0x{offset:x}" if offset else name

    def address_of(self, name):
        for start, _, symbol in self.entries:
            if symbol == name:
                return start
        return None


# header_bytes: how many leading bytes of the segment are the ELF and program headers
Segment = namedtuple("Segment", "address data memory_size header_bytes")

# xlen: 64 or 32; segments: a list of Segment; symbols: Symbols
Program = namedtuple("Program", "path xlen entry segments symbols")


def read_program(path):
    """Parse an ELF file: its loadable segments, entry point and symbols."""
    image = _read_image(path)
    if image[:4] != b"\x7fELF":
        raise MinivmError(f"{path}: not an ELF file")
    cached = cache.load(image)
    if cached is not None:
        return Program(str(path), *cached)
    xlen, entry, segments, symbols = _parse(path, image)
    cache.store(image, (xlen, entry, segments, symbols))
    return Program(str(path), xlen, entry, segments, symbols)


def _read_image(path):
    """The file's bytes: a regular file of at most MAX_IMAGE_BYTES (not a
    FIFO, not /dev/zero, which would never end)."""
    from minivm import hostfiles
    fd, info = hostfiles.open_host_file(path, what="firmware image")
    with open(fd, "rb") as stream:
        if info.st_size > MAX_IMAGE_BYTES:
            raise MinivmError(f"{path}: {info.st_size} bytes, larger than any firmware "
                              f"image minivm loads ({MAX_IMAGE_BYTES >> 20} MiB)")
        try:
            return stream.read(MAX_IMAGE_BYTES)
        except OSError as error:
            raise MinivmError(f"{path}: {error.strerror}") from None


def _parse(path, image):
    import io

    from elftools.common.exceptions import ELFError
    from elftools.construct import ConstructError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(image))
        if elf["e_machine"] != "EM_RISCV":
            raise MinivmError(f"{path}: ELF for {elf['e_machine']}, not RISC-V")
        return elf.elfclass, elf["e_entry"], _loadable_segments(elf, image, path), _symbols(elf)
    # pyelftools on a damaged file: its own errors, or Python's when a field
    # holds a number no real file has (an offset past 2**63, a bad enum).
    except (ELFError, ConstructError, ValueError, KeyError, IndexError,
            OverflowError) as error:
        raise MinivmError(f"{path}: damaged ELF file ({error})") from None


def _loadable_segments(elf, image, path):
    headers_end = max(elf["e_ehsize"], elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"])
    segments = []
    for segment in elf.iter_segments():
        if segment["p_type"] != "PT_LOAD" or segment["p_memsz"] == 0:
            continue   # a zero-size PT_LOAD loads nothing (some linkers emit them)
        if len(segments) == MAX_SEGMENTS:
            raise MinivmError(f"{path}: more than {MAX_SEGMENTS} loadable segments; "
                              f"no firmware image has that many")
        offset, file_size = segment["p_offset"], segment["p_filesz"]
        if file_size > segment["p_memsz"]:
            raise MinivmError(f"{path}: damaged ELF file (a segment's file size 0x{file_size:x} "
                              f"exceeds its memory size 0x{segment['p_memsz']:x})")
        if offset + file_size > len(image):
            raise MinivmError(f"{path}: damaged ELF file (a segment's bytes at 0x{offset:x}"
                              f"+0x{file_size:x} lie past the end of the file)")
        header_bytes = max(0, headers_end - offset)
        segments.append(Segment(segment["p_paddr"], image[offset:offset + file_size],
                                segment["p_memsz"], min(header_bytes, file_size)))
    if not segments:
        raise MinivmError(f"{path}: ELF file has no loadable segment")
    return segments


def _symbols(elf):
    from elftools.elf.sections import SymbolTableSection

    table = elf.get_section_by_name(".symtab")
    if not isinstance(table, SymbolTableSection):
        return Symbols()   # none, or a section of another type under that name: no names
    return Symbols((symbol["st_value"], symbol["st_size"], symbol.name)
                   for symbol in table.iter_symbols()
                   if symbol["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE")
                   and symbol.name and symbol["st_shndx"] != "SHN_UNDEF"
                   and not symbol.name.startswith("$"))


def load_program(program, ram):
    """Copy the program's segments into RAM; every byte must land inside it."""
    for segment in program.segments:
        address, data, memory_size = segment.address, segment.data, segment.memory_size
        if address < ram.base:
            # A segment may start below RAM only to carry the ELF headers
            # (and the zero padding after them) there; QEMU loads just the
            # part inside RAM.  Clip the same way, but only if nothing else
            # below RAM was meant to be loaded.
            skip = ram.base - address
            below = data[segment.header_bytes:skip]
            if skip >= memory_size or any(below) or skip > len(data):
                raise MinivmError(_outside(program, segment, ram))
            data, address, memory_size = data[skip:], ram.base, memory_size - skip
        if not ram.contains(address, memory_size):
            raise MinivmError(_outside(program, segment, ram))
        ram.write(address, data)
        ram.fill(address + len(data), memory_size - len(data))


def _outside(program, segment, ram):
    end = segment.address + segment.memory_size - 1
    return (f"{program.path}: segment at 0x{segment.address:x}-0x{end:x} lies outside "
            f"RAM (0x{ram.base:x}-0x{ram.base + ram.size - 1:x}); try a larger --memory")
