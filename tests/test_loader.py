"""The ELF loader on real-world layouts: header segments below RAM,
zero-size segments, symbols, and the parse cache."""
import struct

import pytest

import oracle
from conftest import firmware
from minivm import elfcache
from minivm.errors import MinivmError
from minivm.loader import read_program
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
