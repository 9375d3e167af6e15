"""The command line as a user meets it: defaults, exit statuses, one-line
errors; hostile flags and files (a trace file naming an input, /dev/full, a
closed stdout, FIFOs, signals); the option parsers fuzzed."""
import os
import signal
import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import oracle
from conftest import firmware, minivm, noise
from minivm import hostfiles
from minivm.cli import build_parser
from minivm.devices import passthrough
from minivm.errors import MinivmError
from minivm.machine import MAX_MEMORY, parse_memory, virtio_disk_from_option


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


@pytest.mark.parametrize("size", ["0", "-5M", "lots", "12345K", "64T", "1.5G", "64G", "", "M"])
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


# -- flags: every mistake is one line and a hint, never a usage block or a traceback ----

def assert_usage_error(done, *words):
    assert_one_line_error(done, "--help", *words)
    assert "usage:" not in done.stderr.decode()


@pytest.mark.parametrize("argv,words", [
    (["run", "--badflag"], ["unrecognized arguments: --badflag"]),
    (["run", "--memory"], ["--memory", "expected one argument"]),
    (["frob"], ["invalid choice: 'frob'"]),
    ([], ["required"]),
    (["run", "--gdb", "70000"], ["--gdb", "65535"]),
    (["run", "--gdb", "0"], ["--gdb"]),
    (["run", "--gdb", "port"], ["--gdb", "not a number"]),
    (["run", "--max-insns", str(1 << 64)], ["--max-insns", str((1 << 64) - 1)]),
    (["run", "--max-insns", "0"], ["--max-insns"]),
    (["run", "--gdb-wait"], ["--gdb-wait needs --gdb"]),
])
def test_bad_flags(argv, words):
    assert_usage_error(minivm(*argv), *words)


def test_largest_instruction_budget_is_accepted():
    done = minivm("run", "--max-insns", str((1 << 64) - 1))
    assert (done.stdout, done.returncode) == oracle.golden(firmware("hello"))


# -- the trace file: created only once every input was checked, never over an input -----

@pytest.mark.parametrize("mistake", [
    ["nope.elf"], ["hello", "--memory", "lots"], ["hello", "--break-on", "nodevice"],
    ["hello", "--disk", "missing.img"]])
def test_refused_run_leaves_the_trace_file_alone(tmp_path, mistake):
    created, kept = tmp_path / "new.trace", tmp_path / "old.trace"
    kept.write_text("yesterday's trace\n")
    for trace in (created, kept):
        args = [tmp_path / word if word.endswith((".elf", ".img")) else word for word in mistake]
        assert minivm("run", *args, "--trace-file", trace).returncode == 2
    assert not created.exists()
    assert kept.read_text() == "yesterday's trace\n"


@pytest.mark.parametrize("role", ["firmware", "disk", "virtio", "passthrough", "input"])
def test_trace_file_naming_an_input_is_refused(tmp_path, role):
    elf = tmp_path / "hello.elf"
    elf.write_bytes(firmware("hello").read_bytes())
    image = tmp_path / "data.img"
    image.write_bytes(noise(64 * 1024))
    option = {"firmware": [], "disk": ["--disk", image], "virtio": ["--virtio-blk", image],
              "passthrough": ["--passthrough", f"{image}@0x40000000"],
              "input": ["--input", image]}[role]
    victim = elf if role == "firmware" else image
    before = victim.read_bytes()
    other_name = tmp_path / "." / victim.name          # the same file by another path
    done = minivm("run", elf, *option, "--trace-file", other_name)
    assert_one_line_error(done, "an input of this run")
    assert victim.read_bytes() == before


def test_trace_file_gets_the_whole_trace(tmp_path):
    trace = tmp_path / "t.trace"
    image = tmp_path / "window.bin"
    image.write_bytes(bytes(4096))
    done = minivm("run", "--trace-file", trace, "--passthrough", f"{image}@0x40000000")
    assert done.returncode == 0
    lines = trace.read_text().splitlines()
    assert "MAP    passthrough0" in lines[0]               # written before the file existed
    assert sum("uart0.THR" in line for line in lines) == len(oracle.golden(firmware("hello"))[0])


def test_trace_file_that_is_a_fifo_nobody_reads_is_refused(tmp_path):
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    done = minivm("run", "--trace-file", fifo, timeout=60)     # not a wait in open()
    assert (done.returncode, done.stderr) == (
        2, f"minivm: {fifo}: a FIFO with no reader\n".encode())


def test_trace_file_that_is_a_fifo_with_a_reader_gets_the_trace(tmp_path):
    import threading
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    # The read end is open before minivm starts (a non-blocking open does
    # not wait for a writer), and a thread drains it while the guest runs.
    # The test holds a write end too, so the reader sees no end of file
    # before minivm has opened and closed its own.
    reader = os.fdopen(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), "rb")
    os.set_blocking(reader.fileno(), True)
    writer = os.open(fifo, os.O_WRONLY)
    chunks = []
    drain = threading.Thread(target=lambda: chunks.append(reader.read()))
    drain.start()
    done = minivm("run", "--trace-file", fifo)
    os.close(writer)
    drain.join(timeout=60)
    reader.close()
    assert done.returncode == 0
    assert b"".join(chunks).count(b"uart0.THR") == len(oracle.golden(firmware("hello"))[0])


# -- outputs that fail: one line, not a traceback ---------------------------------------

def run_with_stdout(stdout, *args):
    return subprocess.run([sys.executable, "-m", "minivm", "run", *map(str, args)],
                          stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                          timeout=120)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this machine")
def test_stdout_on_a_full_disk():
    with open("/dev/full", "wb") as full:
        assert_one_line_error(run_with_stdout(full), "standard output", os.strerror(28))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this machine")
def test_info_on_a_full_disk():
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "minivm", "info"], stdout=full,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=120)
    assert_one_line_error(done, "standard output", os.strerror(28))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this machine")
def test_trace_file_on_a_full_disk():
    done = minivm("run", "--trace-file", "/dev/full")
    assert_one_line_error(done, "/dev/full", os.strerror(28))


def test_closed_stdout():
    done = subprocess.run([sys.executable, "-c",
                           "import os, sys; os.close(1); sys.stdout = None; "
                           "from minivm.cli import main; sys.exit(main(['run']))"],
                          stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    assert_one_line_error(done, "standard output is closed")


# -- inputs that never end or never start ---------------------------------------------

def test_fifo_nobody_writes_is_refused_as_firmware_and_ends_at_once_as_input(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_one_line_error(minivm("run", fifo, timeout=60), "not a regular file")
    done = minivm("run", "uart_echo", "--input", fifo, timeout=60)
    assert done.returncode == 125 and b"guest halted (wfi)" in done.stderr   # input over


def test_endless_input_is_read_as_the_uart_takes_it(tmp_path):
    # Read whole, /dev/zero or a 4 GiB file would take all memory (here: past
    # a 2 GiB address-space limit, a MemoryError).
    import resource
    sparse = tmp_path / "4g.bin"
    with open(sparse, "wb") as stream:
        stream.truncate(4 << 30)

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    for source in ("/dev/zero", sparse):
        done = subprocess.run([sys.executable, "-m", "minivm", "run", "uart_echo", "--input",
                               str(source), "--max-insns", "5000000"], capture_output=True,
                              stdin=subprocess.DEVNULL, preexec_fn=limit_memory, timeout=120)
        assert done.returncode == 124, done.stderr.decode()
        assert done.stdout.startswith(b"uart_echo: type away, q quits\n\0\0")


# -- signals: a clean end, windows synced -----------------------------------------------

@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_end_the_run_cleanly(tmp_path, number):
    window = tmp_path / "window.bin"
    window.write_bytes(bytes(4096))
    process = subprocess.Popen([sys.executable, "-m", "minivm", "run", "spin", "--stats",
                                "--passthrough", f"{window}@0x40000000"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        assert process.stdout.readline() == b"spinning forever\n"
        process.send_signal(number)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 128 + number
    assert stderr.decode() == f"minivm: stopped by {signal.Signals(number).name}\n"


# -- the finisher: a FAIL never exits 0 ---------------------------------------------------

def finisher_store(value):
    """RV64 code: store `value` (a 32-bit constant) to the finisher, then spin."""
    upper, lower = (value + 0x800) >> 12, value & 0xFFF
    lower -= 0x1000 if lower >= 0x800 else 0
    return struct.pack("<5I",
                       0x001002B7,                                     # lui t0, 0x100
                       (upper << 12 & 0xFFFFF000) | 6 << 7 | 0x37,     # lui t1, upper
                       (lower & 0xFFF) << 20 | 6 << 15 | 6 << 7 | 0x13,  # addi t1, t1, lower
                       6 << 20 | 5 << 15 | 2 << 12 | 0x23,             # sw t1, 0(t0)
                       0x0000006F)                                     # j .


@pytest.mark.parametrize("code,status", [(3, 3), (255, 255), (256, 1), (512, 1), (0, 1),
                                         (257, 257)])
def test_fail_code_that_would_exit_0_exits_1(code, status):
    from minivm.machine import Machine
    machine = Machine(firmware("hello"))
    machine.ram.write(machine.program.entry, finisher_store(code << 16 | 0x3333))
    assert machine.run(max_insns=100).exit_code == status


# -- the option parsers fuzzed: a value or one line, never another exception -----------

FLAG_WORDS = ["run", "info", "hello", "--memory", "-m", "--max-insns", "--gdb", "--gdb-wait",
              "--trace", "--trace=mmio", "--stats", "--clock", "--input", "--disk",
              "--passthrough", "--virtio-blk", "--break-on", "--", "-", "--help"]
NUMBERS = ["0", "-1", "1", "0x10", "65535", "65536", str(1 << 64), "1e3", "", "0b1", "١٢"]
argv_words = st.lists(st.one_of(st.sampled_from(FLAG_WORDS), st.sampled_from(NUMBERS),
                                st.text(max_size=8)), max_size=8)
# How many examples: the hypothesis profile's (tests/conftest.py).
PARSERS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PARSERS
@given(argv=argv_words)
def test_argument_parser_gives_arguments_or_one_line(argv):
    import contextlib
    import io
    if "--help" in argv or "-h" in argv:
        return                                   # help is a page, on purpose
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser(argv).parse_args(argv)
    except SystemExit as exit:
        assert exit.code == 2
        message = errors.getvalue()
        assert message.startswith("minivm: ") and message.count("\n") == 1, message
        assert "--help" in message
        return
    if args.command == "run":
        assert args.gdb is None or 1 <= args.gdb <= 65535
        assert args.max_insns is None or 1 <= args.max_insns < 1 << 64


@PARSERS
@given(text=st.one_of(st.text(max_size=12),
                      st.from_regex(r"\s*-?[0-9]{0,12}\s*([KMG](i?B)?)?", fullmatch=True)))
def test_memory_size_is_a_size_or_one_line(text):
    try:
        size = parse_memory(text)
    except MinivmError as error:
        assert "\n" not in str(error)
        return
    assert 0 < size <= MAX_MEMORY and size % 4096 == 0


@PARSERS
@given(path=st.text(min_size=1).filter(lambda text: "\0" not in text),
       flags=st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz@.=", min_size=1,
                              max_size=8), max_size=3))
def test_a_comma_in_a_path_is_written_twice(path, flags):
    text = path.replace(",", ",,") + "".join("," + flag for flag in flags)
    assert hostfiles.split_option(text) == (path, flags)


@PARSERS
@given(text=st.one_of(st.text(max_size=30),
                      st.builds("{}@{}{}{}".format, st.text(max_size=6),
                                st.sampled_from(["", "0x", "-0x", "+", "0X"]),
                                st.text(alphabet="0123456789abcdefABCDEF_ -", max_size=20),
                                st.sampled_from(["", ",ro", ",private", ",rw", ",", ",ro,ro"]))))
def test_passthrough_option_is_parsed_or_one_line(text):
    try:
        path, address, mode = passthrough.parse_option(text)
    except MinivmError as error:
        assert "\n" not in str(error)
        return
    assert path and address >= 0 and mode in ("rw", "ro", "private", "")


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "small.img"
    path.write_bytes(bytes(4096))
    return str(path)


@PARSERS
@given(flags=st.lists(st.sampled_from(["ro", "legacy", "rw", "RO", "ro=1", "path", " ro"]),
                      max_size=4))
def test_virtio_option_is_parsed_or_one_line(small_image, flags):
    text = ",".join([small_image, *flags])
    try:
        image, legacy = virtio_disk_from_option(text)
    except MinivmError as error:
        assert "\n" not in str(error) and "IMAGE[,ro][,legacy]" in str(error)
        return
    image.close()
    assert set(flags) <= {"ro", "legacy"}
    assert (image.read_only, legacy) == ("ro" in flags, "legacy" in flags)


def test_memory_the_host_cannot_map_is_one_line():
    # Under a 3 GB address-space limit (ulimit -v) 16 GiB of RAM cannot be mapped.
    import resource

    def limit_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    done = subprocess.run([sys.executable, "-m", "minivm", "run", str(firmware("hello")),
                           "--memory", "16G"], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60, cwd=os.path.dirname(__file__),
                          preexec_fn=limit_address_space)
    assert (done.returncode, done.stderr) == (
        2, b"minivm: --memory 16384 MiB: the host cannot map it (Cannot allocate memory)\n")
