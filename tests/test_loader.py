"""The ELF loader on real-world layouts: header segments below RAM,
zero-size segments, symbols, and the parse cache; on damaged images, made
by hand and by hypothesis from the committed ones."""
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import oracle
from conftest import firmware
from minivm import elfcache
from minivm.bus import Ram
from minivm.errors import MinivmError
from minivm.loader import Symbols, load_program, read_program
from minivm.machine import Machine

PT_LOAD = 1
RAM_BASE = 0x8000_0000


def program_headers(data):
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    return [phoff + index * phentsize for index in range(phnum)]


def load_header(data):
    return next(entry for entry in program_headers(data)
                if struct.unpack_from("<I", data, entry)[0] == PT_LOAD)


def with_headers_below_ram(tmp_path, poke=None):
    """hello.elf relinked the way `ld -Ttext=0x80000000` does it: the first
    PT_LOAD starts at file offset 0, so the ELF headers (and zero padding)
    sit just below RAM."""
    data = bytearray(firmware("hello").read_bytes())
    entry = load_header(data)
    offset, vaddr, paddr, filesz, memsz = struct.unpack_from("<QQQQQ", data, entry + 8)
    struct.pack_into("<QQQQQ", data, entry + 8, 0, vaddr - offset, paddr - offset,
                     filesz + offset, memsz + offset)
    if poke is not None:
        data[poke] = 0x5A
    path = tmp_path / "low.elf"
    path.write_bytes(data)
    return path


def test_header_segment_below_ram_is_clipped(tmp_path):
    result = Machine(with_headers_below_ram(tmp_path)).run()
    assert result.output == oracle.golden(firmware("hello"))[0]


def test_segment_with_real_bytes_below_ram_is_refused(tmp_path):
    path = with_headers_below_ram(tmp_path, poke=0x800)   # inside the padding
    with pytest.raises(MinivmError, match="outside RAM"):
        Machine(path)


def test_zero_size_load_segment_is_skipped(tmp_path):
    data = bytearray(firmware("hello").read_bytes())
    other = next(entry for entry in program_headers(data) if entry != load_header(data))
    struct.pack_into("<I", data, other, PT_LOAD)
    struct.pack_into("<QQQQQ", data, other + 8, 0, 0x10, 0x10, 0, 0)  # at 0x10: far below RAM
    path = tmp_path / "empty-load.elf"
    path.write_bytes(data)
    assert Machine(path).run().output == oracle.golden(firmware("hello"))[0]


def test_symbols_name_addresses():
    symbols = read_program(firmware("hello")).symbols
    main = symbols.address_of("main")
    assert main is not None and main >= RAM_BASE
    assert symbols.lookup(main) == "main"
    assert symbols.lookup(main + 8) == "main+0x8"
    assert symbols.lookup(0x1000) == ""


def test_cached_parse_equals_fresh_parse(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVM_CACHE_DIR", "off")
    fresh = read_program(firmware("hello"))
    monkeypatch.setenv("MINIVM_CACHE_DIR", str(tmp_path))
    first = read_program(firmware("hello"))          # parses and stores
    assert len(list(tmp_path.glob("elf-*.marshal"))) == 1
    cached = read_program(firmware("hello"))         # loads the entry
    for program in (first, cached):
        assert (program.xlen, program.entry, program.segments) == \
            (fresh.xlen, fresh.entry, fresh.segments)
        assert program.symbols.entries == fresh.symbols.entries


def test_cache_folder_that_cannot_be_written_is_ignored(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MINIVM_CACHE_DIR", str(blocker / "cache"))
    assert read_program(firmware("hello")).entry == RAM_BASE


def test_damaged_cache_entry_is_reparsed(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVM_CACHE_DIR", str(tmp_path))
    read_program(firmware("hello"))
    entry, = tmp_path.glob("elf-*.marshal")
    entry.write_bytes(b"garbage")
    assert read_program(firmware("hello")).entry == RAM_BASE
    assert elfcache.load(firmware("hello").read_bytes()) is not None   # rewritten whole


# -- damaged images: one line (a MinivmError), never a traceback ---------------------

def section_headers(data):
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum = struct.unpack_from("<HH", data, 58)
    return [shoff + index * shentsize for index in range(shnum)]


def damaged(tmp_path, poke):
    data = bytearray(firmware("hello").read_bytes())
    poke(data)
    path = tmp_path / "damaged.elf"
    path.write_bytes(data)
    return path


def file_size_above_memory_size(data):
    entry = load_header(data)
    memsz, = struct.unpack_from("<Q", data, entry + 40)
    struct.pack_into("<Q", data, entry + 32, memsz + 0x1000)      # p_filesz


def offset_past_two_to_the_63(data):
    struct.pack_into("<Q", data, load_header(data) + 8, 1 << 63)  # p_offset


def offset_that_wraps(data):
    struct.pack_into("<Q", data, load_header(data) + 8, (1 << 64) - 0x10)


def symtab_of_another_type(data):
    SHT_SYMTAB, SHT_PROGBITS = 2, 1
    entry = next(entry for entry in section_headers(data)
                 if struct.unpack_from("<I", data, entry + 4)[0] == SHT_SYMTAB)
    struct.pack_into("<I", data, entry + 4, SHT_PROGBITS)


@pytest.mark.parametrize("poke", [file_size_above_memory_size, offset_past_two_to_the_63,
                                  offset_that_wraps])
def test_damaged_segment_is_a_minivm_error(tmp_path, poke, monkeypatch):
    monkeypatch.setenv("MINIVM_CACHE_DIR", "off")
    with pytest.raises(MinivmError, match="damaged ELF file"):
        Machine(damaged(tmp_path, poke))


def test_symtab_of_another_type_loads_without_names(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVM_CACHE_DIR", "off")
    program = read_program(damaged(tmp_path, symtab_of_another_type))
    assert program.symbols.entries == [] and program.entry == RAM_BASE


def test_image_too_large_is_refused_before_it_is_read(tmp_path):
    from minivm import loader
    path = tmp_path / "huge.elf"
    with open(path, "wb") as stream:
        stream.write(firmware("hello").read_bytes())
        stream.truncate(loader.MAX_IMAGE_BYTES + 1)            # sparse: nothing written
    with pytest.raises(MinivmError, match="larger than any firmware image"):
        read_program(path)


@pytest.mark.parametrize("path", ["/dev/zero", "fifo"])
def test_firmware_that_is_not_a_regular_file_is_refused(tmp_path, path):
    # /dev/zero would be read forever; opening a FIFO nobody writes would wait forever.
    if path == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    with pytest.raises(MinivmError, match="not a regular file"):
        read_program(path)


# -- the loader fuzzed: mutants of the committed images -------------------------------

MUTANT_SOURCES = ["hello", "hello-rv32", "traps", "smode", "compressed"]
# Values a damaged field likes to hold: edges of 32 and 64 bits, RAM's base, a page.
EDGES = [0, 1, 0x1000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 63, (1 << 64) - 0x1000,
         (1 << 64) - 1]


@st.composite
def mutants(draw):
    """A committed image with a few bytes or header fields overwritten."""
    data = bytearray(firmware(draw(st.sampled_from(MUTANT_SOURCES))).read_bytes())
    is64 = data[4] == 2
    phoff = struct.unpack_from("<Q" if is64 else "<I", data, 32 if is64 else 28)[0]
    shoff = struct.unpack_from("<Q" if is64 else "<I", data, 40 if is64 else 32)[0]
    for _ in range(draw(st.integers(1, 6))):
        # in the ELF header, the program headers, the section headers, or anywhere
        where = draw(st.sampled_from([0, phoff, shoff, None]))
        offset = (draw(st.integers(0, len(data) - 1)) if where is None
                  else where + draw(st.integers(0, 0xF8)))
        if draw(st.booleans()):
            value, width = draw(st.integers(0, 255)), 1
        else:
            value, width = draw(st.sampled_from(EDGES)), draw(st.sampled_from([4, 8]))
        if offset + width <= len(data):
            data[offset:offset + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, "little")
    return bytes(data)


MUTANT_RAM = None


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=mutants())
def test_mutated_images_load_cleanly_or_fail_in_one_line(tmp_path, image):
    global MUTANT_RAM
    if MUTANT_RAM is None:
        MUTANT_RAM = Ram(RAM_BASE, 1 << 20)
    path = tmp_path / "mutant.elf"
    path.write_bytes(image)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINIVM_CACHE_DIR", "off")
        try:
            load_program(read_program(path), MUTANT_RAM)
        except MinivmError as error:
            assert "\n" not in str(error) and str(path) in str(error)


def entry_in_the_uart(data):
    struct.pack_into("<Q", data, 24, 0x10000000)                  # e_entry


def test_entry_point_in_a_device_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVM_CACHE_DIR", "off")
    with pytest.raises(MinivmError, match="entry point 0x10000000 is in the uart0 device"):
        Machine(damaged(tmp_path, entry_in_the_uart))


def test_more_than_64_loadable_segments_are_refused(tmp_path, monkeypatch):
    # hello.elf's program headers (one PT_LOAD) moved to the end of the
    # file, after 64 small bss-like segments at the start of RAM.
    monkeypatch.setenv("MINIVM_CACHE_DIR", "off")
    data = bytearray(firmware("hello").read_bytes())
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    headers = data[phoff:phoff + 56 * phnum]
    bss = struct.pack("<IIQQQQQQ", 1, 6, 0, 0x80000000, 0x80000000, 0, 4096, 0x1000)
    struct.pack_into("<Q", data, 32, len(data))
    struct.pack_into("<H", data, 56, 64 + phnum)
    data += bss * 64 + headers
    path = tmp_path / "segments.elf"
    path.write_bytes(data)
    with pytest.raises(MinivmError, match="more than 64 loadable segments"):
        read_program(path)


def test_symbols_in_descending_order_are_sorted_once():
    # The order a .symtab lists them in does not matter; symbols at one
    # address keep the file's order, as when they were inserted one by one.
    symbols = Symbols([(0x300, 0x10, "c"), (0x200, 0x10, "b"), (0x100, 0x10, "a"),
                       (0x100, 0x20, "a_alias")])
    assert symbols.entries == [(0x100, 0x10, "a"), (0x100, 0x20, "a_alias"),
                               (0x200, 0x10, "b"), (0x300, 0x10, "c")]
    assert [symbols.lookup(address) for address in (0x104, 0x200, 0x30f, 0x310)] == [
        "a_alias+0x4", "b", "c+0xf", ""]


def test_cache_entry_that_is_a_fifo_is_a_miss(tmp_path, monkeypatch):
    # A shared cache folder may hold anything under an entry's name: a FIFO
    # nobody writes must not make minivm wait.
    monkeypatch.setenv("MINIVM_CACHE_DIR", str(tmp_path))
    image = firmware("hello").read_bytes()
    os.mkfifo(elfcache._entry_path(image))
    assert elfcache.load(image) is None
    assert read_program(firmware("hello")).entry == RAM_BASE


@pytest.mark.parametrize("entry", [
    (64, RAM_BASE, [("x", b"", 5, 0)], []),          # a segment address that is a string
    (64, RAM_BASE, [], [(1, 2)]),                    # a symbol without a name
    (64, RAM_BASE, [], [("main", 0, 0)]),            # a symbol address that is a string
    (16, RAM_BASE, [], []),                          # no such xlen
    [64, RAM_BASE, [], []],                          # a list, not a tuple
])
def test_cache_entry_of_the_wrong_types_is_a_miss(tmp_path, monkeypatch, entry):
    import marshal
    monkeypatch.setenv("MINIVM_CACHE_DIR", str(tmp_path))
    image = firmware("hello").read_bytes()
    with open(elfcache._entry_path(image), "wb") as stream:
        stream.write(marshal.dumps(entry))
    assert elfcache.load(image) is None
    machine = Machine(firmware("hello"))
    assert machine.run().exit_code == 0
