"""A real gdb-multiarch against minivm's gdb server, in batch mode:
break at a symbol, continue, read registers and memory, single-step, watch
a UART register, kill; on RV64 and RV32 firmware; and Ctrl-C."""
import socket
import subprocess
import sys
import time

import pytest

from conftest import firmware, needs

needs_gdb = needs("gdb-multiarch", "gdb-multiarch")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


STARTED = []


@pytest.fixture(autouse=True)
def no_stray_machines():
    # A failed test must not leave a spinning minivm behind.
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def start_minivm(image, *extra):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "minivm", "run", str(image), "--gdb", str(port), *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(process)
    # It says so on stderr once it listens.
    assert process.stderr.readline().startswith(b"minivm: gdb server on localhost:")
    return process, port


def gdb(image, port, *commands, timeout=60):
    arguments = ["gdb-multiarch", "-batch", "-nx", "-ex", f"file {image}",
                 "-ex", f"target remote :{port}"]
    for command in commands:
        arguments += ["-ex", command]
    done = subprocess.run(arguments, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return done.stdout + done.stderr


@needs_gdb
@pytest.mark.parametrize("image", ["hello", "hello-rv32"])
def test_break_registers_memory_step_watch_kill(image):
    path = firmware(image)
    process, port = start_minivm(path, "--gdb-wait")
    output = gdb(path, port,
                 "break main", "continue",
                 "info registers pc", "p/x $sp", "info registers priv", "p/x $mstatus",
                 "x/4xb main", "x/1i $pc",
                 "stepi", "info registers pc",
                 "watch *(char *)0x10000000", "continue",
                 "delete", "kill")
    stdout, stderr = process.communicate(timeout=30)
    assert "Breakpoint 1, main ()" in output, output
    assert "pc             0x800" in output and "<main>" in output
    assert "prv:3 [Machine]" in output
    assert "<main+4>" in output                      # one instruction later
    assert "Old value = 0 '\\000'" in output and "New value = 72 'H'" in output, output
    assert stdout == b"H"                            # the watched byte went out once, then kill
    assert process.returncode == 0


@needs_gdb
def test_continue_to_the_end_reports_the_exit_status():
    path = firmware("hello")
    process, port = start_minivm(path, "--gdb-wait")
    output = gdb(path, port, "continue")
    process.communicate(timeout=30)
    assert "exited normally" in output, output


@needs_gdb
def test_ctrl_c_from_gdb_stops_a_spinning_guest():
    # Ctrl-C in gdb: gdb gets SIGINT and sends 0x03; the guest never leaves
    # Unicorn on its own, so the server's watcher thread must stop it.
    import signal
    path = firmware("spin")
    process, port = start_minivm(path, "--gdb-wait")
    session = subprocess.Popen(
        ["gdb-multiarch", "-batch", "-nx", "-ex", f"file {path}", "-ex", f"target remote :{port}",
         "-ex", "continue", "-ex", "info registers pc", "-ex", "kill"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2)
    session.send_signal(signal.SIGINT)
    output, _ = session.communicate(timeout=30)
    _, stderr = process.communicate(timeout=30)
    assert "Program received signal SIGINT" in output, output
    assert "<main+" in output
    assert stderr.endswith(b"minivm: killed by the debugger\n")
