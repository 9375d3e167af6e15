"""The command line as a user meets it: defaults, exit statuses, one-line errors."""
import struct

import pytest

import oracle
from conftest import firmware, minivm


def assert_one_line_error(done, *words):
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("minivm: "), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in stderr, stderr


def test_run_without_arguments_runs_hello():
    done = minivm("run")
    expected_output, expected_status = oracle.golden(firmware("hello"))
    assert done.stdout == expected_output
    assert done.returncode == expected_status


def test_exit_status_is_the_finishers_code(tmp_path):
    # bench_mmio returns 0 only if the scratch register kept the last byte.
    assert minivm("run", firmware("bench_mmio")).returncode == 0


def test_max_insns_stops_a_runaway_guest():
    done = minivm("run", "bench_loop", "--max-insns", "10000")
    assert done.returncode == 124
    assert done.stderr.decode() == "minivm: stopped after 10000 instructions (--max-insns)\n"


def test_stats_counts_traps_per_register():
    done = minivm("run", "--stats")
    stats = done.stderr.decode()
    output_bytes = len(oracle.golden(firmware("hello"))[0])
    assert done.returncode == 0
    assert f"THR write {output_bytes}," in stats
    assert "FINISHER write 1" in stats


def test_info_prints_the_memory_map():
    done = minivm("info")
    text = done.stdout.decode()
    assert done.returncode == 0
    assert "uart0         0x0010000000 0x0000000100  10" in text
    assert "finisher      0x0000100000 0x0000001000  -" in text
    assert "ram           0x0080000000 0x0008000000  -" in text
    assert "unicorn 2." in text and "capstone" in text


def test_info_reflects_memory_size():
    assert "ram           0x0080000000 0x0010000000" in minivm("info", "-m", "256M").stdout.decode()


def test_missing_file(tmp_path):
    assert_one_line_error(minivm("run", tmp_path / "nope.elf"), "nope.elf", "No such file")


def test_directory(tmp_path):
    assert_one_line_error(minivm("run", tmp_path), "Is a directory")


def test_not_an_elf(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    assert_one_line_error(minivm("run", path), "not an ELF file")


def test_wrong_architecture(tmp_path):
    path = tmp_path / "x86.elf"
    data = bytearray(firmware("hello").read_bytes())
    struct.pack_into("<H", data, 18, 62)   # e_machine = EM_X86_64
    path.write_bytes(data)
    assert_one_line_error(minivm("run", path), "EM_X86_64", "not RISC-V")


def test_truncated_elf(tmp_path):
    path = tmp_path / "cut.elf"
    path.write_bytes(firmware("hello").read_bytes()[:100])
    assert_one_line_error(minivm("run", path), "cut.elf")


def test_segment_outside_ram(tmp_path):
    path = tmp_path / "far.elf"
    path.write_bytes(move_first_load_segment(firmware("hello").read_bytes(), 0x4000_0000))
    assert_one_line_error(minivm("run", path), "outside RAM")


@pytest.mark.parametrize("size", ["0", "-5M", "lots", "12345K", "64T", "1.5G", "64G"])
def test_bad_memory_size(size):
    assert_one_line_error(minivm("run", f"--memory={size}"), "memory size")


def test_double_fault_is_one_line_naming_pc_cause_and_tval():
    # With 4 KiB of RAM the image loads but its stack (64 KiB above the
    # code) is outside RAM: the first store to it is an access fault, and
    # hello has no trap handler (mtvec is 0, where nothing is mapped).
    done = minivm("run", "hello", "--memory", "4K")
    stderr = done.stderr.decode()
    assert done.returncode == 125
    assert stderr.startswith("minivm: double fault: instruction access fault at pc 0x0 "
                             "(tval 0x0) entering the trap handler (mtvec 0x0) for "
                             "store/AMO access fault at pc 0x80000"), stderr
    assert "(tval 0x8001" in stderr and stderr.count("\n") == 1


def move_first_load_segment(elf, new_address):
    """A copy of an ELF64 with its first PT_LOAD segment's addresses changed."""
    data = bytearray(elf)
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for index in range(phnum):
        entry = phoff + index * phentsize
        if struct.unpack_from("<I", data, entry)[0] == 1:   # PT_LOAD
            struct.pack_into("<QQ", data, entry + 16, new_address, new_address)
            return bytes(data)
    raise AssertionError("no PT_LOAD segment")


def test_ctrl_c_stops_a_guest_spinning_inside_unicorn():
    # spin never leaves JIT-compiled code, so Python's own signal handling
    # alone would never run: the interrupt thread must stop the vCPU.
    import signal
    import subprocess
    import sys
    import time
    process = subprocess.Popen([sys.executable, "-m", "minivm", "run", "spin"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline() == b"spinning forever\n"
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130
    assert stderr.decode() == "minivm: interrupted\n"
