"""A real gdb-multiarch against minivm's gdb server, in batch mode:
break at a symbol, continue, read registers and memory, single-step, watch
a UART register, kill; on RV64 and RV32 firmware; and Ctrl-C.  Then hostile
clients: malformed packets, a client gone mid-reply, a write into a read-only
passthrough window, and random packets into the server's parser."""
import socket
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import firmware, needs
from minivm import Machine
from minivm.gdb import Connection

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
    assert process.returncode == 137                 # 128 + SIGKILL, as for a process gdb kills


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


@needs_gdb
def test_kill_at_the_first_stop_ends_the_run():
    # --gdb-wait's stop comes before the first instruction; `k` there ends
    # the run as `k` later does (the spinning guest would never end itself).
    path = firmware("spin")
    process, port = start_minivm(path, "--gdb-wait")
    gdb(path, port, "kill")
    _, stderr = process.communicate(timeout=30)
    assert stderr == b"minivm: killed by the debugger\n"
    assert process.returncode == 137


# == hostile clients ==============================================================================
# gdb itself only sends well-formed packets; a raw socket sends the rest.

class RawClient:
    """The remote protocol by hand: $data#checksum, each side acking with +."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""

    def _until(self, marker):
        while marker not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "the server closed the connection"
            self.buffer += chunk
        at = self.buffer.index(marker) + len(marker)
        data, self.buffer = self.buffer[:at], self.buffer[at:]
        return data

    def send(self, packet):
        data = packet.encode("latin-1")
        self.sock.sendall(b"$" + data + b"#%02x" % (sum(data) & 0xFF))

    def ask(self, packet):
        """Send one packet; the server's reply (acked)."""
        self.send(packet)
        assert self._until(b"+") == b"+"
        return self.reply()

    def reply(self):
        """The server's next packet (acked), after its acks of ours."""
        reply = self._until(b"#").lstrip(b"+")
        while len(self.buffer) < 2:            # the two checksum digits
            self.buffer += self.sock.recv(2)
        self.buffer = self.buffer[2:]
        self.sock.sendall(b"+")
        assert reply.startswith(b"$")
        return reply[1:-1].decode("latin-1")

    def drop(self):
        """Close at once with a reset (SO_LINGER 0), as a crashed client would."""
        import struct
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


MALFORMED_PACKETS = ["pzz", "p", "P20", "P20=zz", "P20=1234", "mzz,4", "m80000000", "m,",
                     "m-1,4", "m 80000000,4", "m80000000,0x4", "m80000000,4,4", "M..:zz",
                     "M80000000,2:zz", "M80000000,2:123", "M80000000,4:00", "X80000000,4:ab",
                     "Z0", "Z0,", "Z0,zz,4", "z0,80000000", "Z2,80000000,0", "Z0,-4,4",
                     "Z0,10000000000000000,4", "G00", "qXfer:features:read:target.xml:",
                     "qXfer:features:read:target.xml:zz,10", "qXfer:features:read:target.xml:0",
                     "qXfer:features:read:target.xml:0,10,10"]


@pytest.mark.parametrize("image", ["hello", "hello-rv32"])
def test_malformed_packets_get_an_error_reply(image):
    process, port = start_minivm(firmware(image), "--gdb-wait")
    client = RawClient(port)
    replies = {packet: client.ask(packet) for packet in MALFORMED_PACKETS}
    assert replies == {packet: "E01" for packet in MALFORMED_PACKETS}
    assert client.ask("m80000000,4") != "E01"           # and the server still answers
    assert client.ask("m0,4") == "E14"                  # nothing mapped there
    client.send("k")
    stdout, stderr = process.communicate(timeout=30)
    assert b"Traceback" not in stderr, stderr.decode()
    assert process.returncode == 137


def test_an_overlong_packet_is_a_clean_detach():
    process, port = start_minivm(firmware("hello"), "--gdb-wait")
    client = RawClient(port)
    client.sock.sendall(b"$" + b"m" * 0x10000)          # never a '#'
    stdout, stderr = process.communicate(timeout=60)     # gdb gone: the guest runs on
    assert b"Traceback" not in stderr, stderr.decode()
    assert stdout.startswith(b"Hello") and process.returncode == 0


@pytest.mark.parametrize("packet", ["m80000000,2000", "g", "qXfer:features:read:target.xml:0,3000"])
def test_a_client_gone_mid_reply_is_a_clean_detach(packet):
    process, port = start_minivm(firmware("hello"), "--gdb-wait")
    client = RawClient(port)
    client.send(packet)
    assert client._until(b"+") == b"+"                   # the server has the packet...
    client.drop()                                        # ...and is sending or awaiting our ack
    stdout, stderr = process.communicate(timeout=60)
    assert b"Traceback" not in stderr and b"BrokenPipe" not in stderr, stderr.decode()
    assert stdout.startswith(b"Hello") and process.returncode == 0


@needs_gdb
def test_writing_a_read_only_passthrough_window_is_an_error_for_gdb(tmp_path):
    """Unicorn would store straight into the PROT_READ mapping: SIGSEGV of the host."""
    window = tmp_path / "window.bin"
    window.write_bytes(bytes(range(256)) * 16)
    path = firmware("hello")
    process, port = start_minivm(path, "--gdb-wait", "--passthrough", f"{window}@0x40000000,ro")
    output = gdb(path, port, "set {int}0x40000000 = 0x12345678", "x/1xw 0x40000000", "kill")
    process.communicate(timeout=30)
    assert "Cannot access memory at address 0x40000000" in output, output
    assert "0x40000000:\t0x03020100" in output                  # still the file's bytes
    assert process.returncode == 137                            # the kill
    assert window.read_bytes() == bytes(range(256)) * 16


# -- the packet parser, fuzzed (in process: the server's handler on a socket pair) ---------------

hex_text = st.one_of(st.integers(0, 2**70).map(lambda n: f"{n:x}"),
                     st.text(alphabet="0123456789abcdefABCDEFxz-+_ ", max_size=20))
packets = st.one_of(
    st.tuples(st.sampled_from(list("gGpPmMXzZcCsSkDHT?") + ["qXfer:features:read:target.xml:",
                                                              "vCont;", "vCont?", "qSupported",
                                                              "Z0,", "Z2,", "z0,", "m", "M"]),
              st.lists(st.one_of(hex_text, st.sampled_from([",", ":", "=", ";", "#", "}"])),
                       max_size=8)).map(lambda t: t[0] + "".join(t[1])),
    st.builds(lambda kind, a, n: f"Z{kind},{a:x},{n:x}", st.sampled_from("0123459"),
              st.one_of(st.integers(0x8000_0000, 0x8000_1000), st.integers(0, 2**66)),
              st.integers(0, 2**33)),
    st.builds(lambda c, a, n, d: f"{c}{a:x},{n:x}:{d}", st.sampled_from("MX"),
              st.one_of(st.sampled_from([0x4000_0000, 0x8000_0000, 0x1000_0000, 0x10_0000]),
                        st.integers(0, 2**64)),
              st.integers(0, 64), st.text(alphabet="0123456789abcdef", max_size=64)),
    st.text(max_size=40))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A machine with a read-only passthrough window, its Debugger talking to
    one end of a socket pair; the test is the client on the other."""
    window = tmp_path_factory.mktemp("gdb") / "window.bin"
    window.write_bytes(bytes(4096))
    machine = Machine(firmware("hello"), passthrough=[f"{window}@0x40000000,ro"])
    debugger = machine.attach_debugger(0)
    server, client = socket.socketpair()
    debugger.conn = Connection(server)
    debugger.last_stop = "S05"
    client.settimeout(10)
    yield debugger, client, window
    server.close()
    client.close()
    debugger.listener.close()


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(packet=packets)
def test_random_packets_never_raise(served, packet):
    debugger, client, window = served
    if packet.startswith("D"):
        client.sendall(b"+")                   # D's reply waits for its ack, then detaches
    action = debugger.handle(packet)
    assert action in (None, "continue", "step", "kill", "detach")
    client.setblocking(False)
    try:
        reply = client.recv(1 << 16)
    except BlockingIOError:
        reply = b""
    finally:
        client.settimeout(10)
    if reply:
        assert reply.startswith(b"$") and reply[-3:-2] == b"#"
    assert window.read_bytes() == bytes(4096)


GOLDEN = firmware("hello").parents[1] / "tests" / "golden"


def symbol(image, name):
    from minivm.loader import read_program
    return read_program(firmware(image)).symbols.address_of(name)


@pytest.mark.parametrize("insert", ["Z0,{puts:x},4", "Z2,10000000,1"])    # puts; the UART's THR
def test_a_client_gone_without_detach_leaves_no_breakpoint_behind(insert):
    # The guest runs on as after D: hello prints all of its text, status 0.
    process, port = start_minivm(firmware("hello"), "--gdb-wait")
    client = RawClient(port)
    assert client.ask(insert.format(puts=symbol("hello", "puts"))) == "OK"
    client.drop()
    stdout, stderr = process.communicate(timeout=60)
    assert b"interrupted" not in stderr, stderr.decode()
    assert stdout == GOLDEN.joinpath("hello.out").read_bytes() and process.returncode == 0


def test_clients_that_come_and_go_while_the_guest_runs_leave_the_server_answering():
    # Each client is taken over between two runs of the guest; one arriving
    # while the last is being dropped used to stop nothing (the stop was
    # lost): the next client was never answered, and SIGTERM no longer
    # ended the run.
    process, port = start_minivm(firmware("spin"))
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as quick:
            quick.sendall(b"$g#67")
    client = RawClient(port)
    client.sock.settimeout(10)
    assert client.ask("?") == "S05"
    client.sock.close()
    process.terminate()
    _, stderr = process.communicate(timeout=30)
    assert stderr == b"minivm: stopped by SIGTERM\n" and process.returncode == 143


def spin_continued():
    """A spinning guest, its gdb client (raw) having just sent `c`."""
    process, port = start_minivm(firmware("spin"), "--gdb-wait")
    client = RawClient(port)
    client.sock.settimeout(10)
    assert client.ask("?") == "S05"
    client.send("c")
    return process, client


def test_packets_sent_while_the_guest_runs_are_answered_after_the_stop():
    # gdb waits for the stop before it asks anything; a client that does
    # not gets its answers, in order, after the stop reply.  A 0x03 inside
    # a packet (X's binary data) is data, not Ctrl-C.
    process, client = spin_continued()
    for packet in ["X80100000,1:\x03", "m80100000,1", "m0,4"]:
        client.send(packet)
    client.sock.sendall(b"\x03")
    assert [client.reply() for _ in range(4)] == ["S02", "OK", "03", "E14"]
    client.send("k")
    _, stderr = process.communicate(timeout=30)
    assert stderr == b"minivm: killed by the debugger\n" and process.returncode == 137


def test_sigterm_ends_the_run_while_gdb_is_connected():
    # The signal's stop is not the debugger's (gdb would hear S02 and the
    # guest run on): the run ends.
    process, client = spin_continued()
    client.sock.sendall(b"\x03")
    assert client.reply() == "S02"                # a stop in the run loop: signals are watched
    client.send("c")
    assert client._until(b"+") == b"+"            # the server has it: the guest runs
    process.terminate()
    _, stderr = process.communicate(timeout=30)
    assert stderr == b"minivm: stopped by SIGTERM\n" and process.returncode == 143
