"""Passthrough: real files (and /dev/shm) mapped into guest memory, read and
written by the passthrough firmware with plain loads and stores, checked on
the host afterwards; and every way to get the option wrong."""
import io
import os

import pytest

from conftest import PATTERN, firmware, fnv1a, minivm, noise
from minivm.errors import MinivmError
from minivm.machine import Machine

WINDOW = 0x4000_0000
CHECKED = 64 * 1024


def random_file(folder, size=CHECKED, name="window.bin"):
    path = os.path.join(folder, name)
    with open(path, "wb") as stream:
        stream.write(noise(size))
    return path


def run_demo(path, mode=""):
    return minivm("run", firmware("passthrough"), "--passthrough",
                  f"{path}@0x{WINDOW:x}{mode}", "--stats")


def expected_output(data, last_line):
    return (f"passthrough: window at 0x{WINDOW:08x}\n"
            f"fnv1a of sectors 0-127: 0x{fnv1a(data[:CHECKED]):08x}\n{last_line}\n").encode()


def test_read_write_window_reaches_the_file(tmp_path):
    path = random_file(tmp_path, 2 * CHECKED)
    original = open(path, "rb").read()
    done = run_demo(path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == expected_output(
        original, "wrote and read back the last sector of the first 64 KiB: ok")
    after = open(path, "rb").read()
    assert after == original[:CHECKED - 512] + PATTERN + original[CHECKED:]


def test_window_costs_no_trap(tmp_path):
    done = run_demo(random_file(tmp_path))
    line = next(line for line in done.stderr.decode().splitlines()
                if line.strip().startswith("passthrough0"))
    assert line.split()[1] == "0"


def test_read_only_window_faults_into_the_guest(tmp_path):
    path = random_file(tmp_path)
    original = open(path, "rb").read()
    done = run_demo(path, ",ro")
    assert done.returncode == 3
    assert done.stdout == expected_output(
        original, f"WRITE failed: store access fault at 0x{WINDOW + CHECKED - 512:08x}")
    assert open(path, "rb").read() == original


def test_private_window_changes_only_the_guests_copy(tmp_path):
    path = random_file(tmp_path)
    original = open(path, "rb").read()
    done = run_demo(path, ",private")
    assert done.returncode == 0
    assert b"ok\n" in done.stdout
    assert open(path, "rb").read() == original


def test_dev_shm_file(tmp_path):
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm on this machine")
    path = random_file("/dev/shm", name=f"minivm-test-{os.getpid()}.bin")
    try:
        original = open(path, "rb").read()
        assert run_demo(path).returncode == 0
        assert open(path, "rb").read()[CHECKED - 512:CHECKED] == PATTERN
        assert open(path, "rb").read()[:CHECKED - 512] == original[:CHECKED - 512]
    finally:
        os.unlink(path)


def test_trace_shows_the_mapping(tmp_path):
    path = random_file(tmp_path)
    trace = io.StringIO()
    Machine(firmware("passthrough"), passthrough=[f"{path}@0x{WINDOW:x},ro"], trace=trace).run()
    assert f"MAP    passthrough0: {path} -> 0x40000000-0x4000ffff (ro, 64 KiB)" in trace.getvalue()


# -- bad input: one line, exit 2, the file never created or truncated -------------------

def refused(done, *words):
    stderr = done.stderr.decode()
    assert done.returncode == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    for word in words:
        assert word in stderr, stderr
    return True


def test_missing_file_is_not_created(tmp_path):
    path = tmp_path / "nope.bin"
    assert refused(run_demo(path), "No such file")
    assert not path.exists()


def test_directory(tmp_path):
    assert refused(run_demo(tmp_path), "directory")


@pytest.mark.parametrize("size", [0, 5000])
def test_size_not_a_page_multiple_is_refused_not_mapped(tmp_path, size):
    path = random_file(tmp_path, size)
    original = open(path, "rb").read()
    assert refused(run_demo(path), "not a positive multiple of 4096")
    assert open(path, "rb").read() == original


@pytest.mark.parametrize("option,words", [
    ("{path}@0x40000800", ["not 4 KiB aligned"]),
    ("{path}@nowhere", ["bad passthrough address"]),
    ("{path}", ["PATH@ADDR"]),
    ("{path}@0x40000000,fast", ["bad passthrough mode"]),
    ("{path}@0x80000000", ["overlaps ram"]),
    ("{path}@0x10000000", ["overlaps uart0"]),
    # past the guest's physical address space (56 bits on RV64), or negative
    (f"{{path}}@0x{1 << 64:x}", ["56-bit physical address space"]),
    (f"{{path}}@0x{(1 << 64) + 0x8000_0000:x}", ["56-bit physical address space"]),
    ("{path}@0xFFFFFFFFFFFFF000", ["56-bit physical address space"]),
    (f"{{path}}@0x{(1 << 56) - 0x1000:x}", ["56-bit physical address space"]),
    ("{path}@-0x1000", ["bad passthrough address"]),
    ("{path}@+0x1000", ["bad passthrough address"]),
    ("{path}@0x", ["bad passthrough address"]),
    ("{path}@0x40000000,ro,private", ["PATH@ADDR"]),
])
def test_bad_options(tmp_path, option, words):
    path = random_file(tmp_path)
    original = open(path, "rb").read()
    done = minivm("run", "hello", "--passthrough", option.format(path=path))
    assert refused(done, *words)
    assert open(path, "rb").read() == original


def test_windows_must_not_overlap_each_other(tmp_path):
    first, second = random_file(tmp_path, name="a.bin"), random_file(tmp_path, name="b.bin")
    with pytest.raises(MinivmError, match="passthrough1 .* overlaps passthrough0"):
        Machine(firmware("hello"), passthrough=[f"{first}@0x40000000", f"{second}@0x4000f000"])


def test_highest_window_that_fits_is_mapped(tmp_path):
    path = random_file(tmp_path)
    machine = Machine(firmware("hello"), passthrough=[f"{path}@0x{(1 << 56) - CHECKED:x}"])
    assert machine.memory_map()[-1][1:3] == ((1 << 56) - CHECKED, CHECKED)


def test_rv32_guest_has_a_34_bit_physical_address_space(tmp_path):
    path = random_file(tmp_path)
    assert refused(minivm("run", "hello-rv32", "--passthrough", f"{path}@0x400000000"),
                   "34-bit physical address space")


@pytest.mark.parametrize("source", ["fifo", "/dev/zero"])
def test_not_a_mappable_file(tmp_path, source):
    if source == "fifo":
        source = tmp_path / "fifo"
        os.mkfifo(source)        # opening it read-only would wait for a writer forever
    assert refused(run_demo(source, ",ro"), "not a regular file")


def test_file_without_write_permission_is_not_mapped_read_write(tmp_path):
    # root's access() says any file is writable; the mode bits say otherwise.
    path = random_file(tmp_path)
    os.chmod(path, 0o444)
    original = open(path, "rb").read()
    assert refused(run_demo(path), "read-only file (mode 444)")
    assert run_demo(path, ",ro").returncode == 3           # the guest's store faults
    assert open(path, "rb").read() == original


def test_path_with_a_comma(tmp_path):
    path = random_file(tmp_path, name="my,window@v2.bin")
    done = run_demo(str(path).replace(",", ",,"), ",private")
    assert done.returncode == 0, done.stderr.decode()


SHRINK_THEN_RUN = """
import os, sys
from minivm.machine import Machine
path, size = sys.argv[1], int(sys.argv[2])
machine = Machine(sys.argv[3], passthrough=[path + "@0x40000000"])
os.truncate(path, size)          # another program shrinks the file under the mapping
result = machine.run()
print(result.exit_code, result.message)
"""


@pytest.mark.parametrize("pure", ["0", "1"])
@pytest.mark.parametrize("size", [4096, 0])
def test_file_that_shrinks_while_mapped_ends_the_run_in_one_line(tmp_path, size, pure):
    # The guest's load from a page with no file behind it raises SIGBUS in
    # the host; the guard catches it (with MINIVM_PURE=1 too: it has no twin).
    import subprocess
    import sys
    path = random_file(tmp_path)
    done = subprocess.run([sys.executable, "-c", SHRINK_THEN_RUN, path, str(size),
                           firmware("passthrough")], capture_output=True, timeout=120,
                          env={**os.environ, "MINIVM_PURE": pure},
                          cwd=os.path.dirname(__file__))   # the installed minivm, compiled
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == (
        f"2 {path}: the passthrough file shrank while mapped (the guest's access at "
        f"0x{0x4000_0000 + size:x} is past its end)\n")


def test_any_other_sigbus_still_ends_the_process():
    # The guard takes only faults inside its windows; a SIGBUS elsewhere
    # (here one sent with kill) goes to the handler that was there before.
    import signal
    import subprocess
    import sys
    script = ("import os, signal, sys, tempfile\n"
              "from minivm.machine import Machine\n"
              "window = tempfile.NamedTemporaryFile()\n"
              "window.truncate(4096)\n"
              "Machine(sys.argv[1], passthrough=[window.name + '@0x40000000'])\n"
              "os.kill(os.getpid(), signal.SIGBUS)\n"
              "print('survived')\n")
    done = subprocess.run([sys.executable, "-c", script, firmware("hello")],
                          capture_output=True, timeout=120, cwd=os.path.dirname(__file__))
    assert done.returncode == -signal.SIGBUS and done.stdout == b""
