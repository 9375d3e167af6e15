"""A gdb remote serial protocol server, living in the run loop.

    minivm run FW.elf --gdb 1234 --gdb-wait      # like QEMU's -s -S
    gdb-multiarch FW.elf -ex 'target remote :1234'

The server is not a thread racing the vCPU: it is one more source of exits.
When the guest stops (a breakpoint, a watchpoint, a single step, Ctrl-C
from gdb), the run loop hands the stop to `Debugger.stopped()`, which talks
to gdb until gdb says continue, step, detach or kill.  A small helper thread
only watches the socket while the guest runs, to stop the vCPU when gdb
sends Ctrl-C (byte 0x03), as the terminal's Ctrl-C does.

What each gdb request costs the guest:
  software breakpoint (Z0)   a Unicorn code hook on that one address: free elsewhere
  watchpoint (Z2/Z3/Z4)      a memory hook on that range; on a device register the
                             bus stops the guest *before* the access reaches the device
  single step (s)            the exact instruction counter, stopping after one
Nothing is hooked while no breakpoint or watchpoint is set.
Protocol: "GDB Remote Serial Protocol" in the gdb manual (Appendix E).
"""
import select
import socket
import threading
import time

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UcError
from unicorn.riscv_const import (UC_RISCV_REG_MCAUSE, UC_RISCV_REG_MEPC, UC_RISCV_REG_MIE,
                                 UC_RISCV_REG_MIP, UC_RISCV_REG_MISA, UC_RISCV_REG_MSCRATCH,
                                 UC_RISCV_REG_MSTATUS, UC_RISCV_REG_MTVAL, UC_RISCV_REG_MTVEC,
                                 UC_RISCV_REG_SATP, UC_RISCV_REG_SCAUSE, UC_RISCV_REG_SEPC,
                                 UC_RISCV_REG_SSTATUS, UC_RISCV_REG_STVAL, UC_RISCV_REG_STVEC)

from minivm.cpu import Exit, ExitReason

SIGINT, SIGTRAP = 2, 5
ABI_NAMES = ("zero ra sp gp tp t0 t1 t2 fp s1 a0 a1 a2 a3 a4 a5 a6 a7 "
             "s2 s3 s4 s5 s6 s7 s8 s9 s10 s11 t3 t4 t5 t6").split()
PC_REGNUM = 32
CSR_REGNUM_BASE = 65          # gdb numbers CSR n as register 65 + n
PRIV_REGNUM = 65 + 4096       # gdb's virtual "priv" register
CSRS = {  # CSR number: (name, Unicorn register), the ones a trap handler reads
    0x300: ("mstatus", UC_RISCV_REG_MSTATUS), 0x301: ("misa", UC_RISCV_REG_MISA),
    0x304: ("mie", UC_RISCV_REG_MIE), 0x305: ("mtvec", UC_RISCV_REG_MTVEC),
    0x340: ("mscratch", UC_RISCV_REG_MSCRATCH), 0x341: ("mepc", UC_RISCV_REG_MEPC),
    0x342: ("mcause", UC_RISCV_REG_MCAUSE), 0x343: ("mtval", UC_RISCV_REG_MTVAL),
    0x344: ("mip", UC_RISCV_REG_MIP), 0x100: ("sstatus", UC_RISCV_REG_SSTATUS),
    0x105: ("stvec", UC_RISCV_REG_STVEC), 0x141: ("sepc", UC_RISCV_REG_SEPC),
    0x142: ("scause", UC_RISCV_REG_SCAUSE), 0x143: ("stval", UC_RISCV_REG_STVAL),
    0x180: ("satp", UC_RISCV_REG_SATP),
}
WATCH_KINDS = {"2": "write", "3": "read", "4": "access"}
PACKET_SIZE = 0x4000          # what qSupported tells gdb it may send
MAX_PACKET = 2 * PACKET_SIZE  # a client sending more is not gdb: drop it
MALFORMED = "E01"             # the protocol's error reply: "E NN"
BAD_ADDRESS = "E14"           # EFAULT, as gdbserver says it
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
REPEAT_STOP = 0.05            # seconds between two tries of a stop not yet taken
LAST_ACK_TIMEOUT = 1.0        # seconds to wait for gdb's + of the reply before closing


def target_xml(xlen):
    bits = xlen
    gprs = "".join(f'<reg name="{name}" bitsize="{bits}" type="{"code_ptr" if name == "ra" else "int"}"'
                   f' regnum="{n}"/>' for n, name in enumerate(ABI_NAMES))
    csrs = "".join(f'<reg name="{name}" bitsize="{bits}" type="int" regnum="{CSR_REGNUM_BASE + n}"/>'
                   for n, (name, _) in sorted(CSRS.items()))
    return ('<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">'
            f'<target version="1.0"><architecture>riscv:rv{xlen}</architecture>'
            f'<feature name="org.gnu.gdb.riscv.cpu">{gprs}'
            f'<reg name="pc" bitsize="{bits}" type="code_ptr" regnum="{PC_REGNUM}"/></feature>'
            f'<feature name="org.gnu.gdb.riscv.csr">{csrs}</feature>'
            f'<feature name="org.gnu.gdb.riscv.virtual"><reg name="priv" bitsize="{bits}" '
            f'type="int" regnum="{PRIV_REGNUM}"/></feature></target>')


class Connection:
    """Packets over a TCP socket: $data#checksum, acknowledged with + .

    gdb sends three kinds of thing, told apart by their first byte: a packet
    ($), an acknowledgement (+, or - for "send that again") and, outside a
    packet, an interrupt request (0x03, Ctrl-C).  A reply is sent without
    waiting for its + (TCP delivers it intact): the wait would swallow
    packets gdb sent while the guest ran, which come before that + ."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.last_sent = b""
        self.in_packet = False         # where keep() is in the stream: inside $...#
        self.checksum_left = 0         # ...or in the two digits after the #
        self.lock = threading.Lock()   # the interrupt watcher reads the socket too

    def _byte(self):
        with self.lock:
            if not self.buffer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError("gdb went away")
                self.buffer = chunk
            byte, self.buffer = self.buffer[:1], self.buffer[1:]
            return byte

    def receive(self):
        """The next packet's data, or b'\\x03' for an interrupt request."""
        while True:
            byte = self._byte()
            if byte == b"\x03":
                return byte
            if byte == b"-":
                self.sock.sendall(self.last_sent)
            if byte == b"$":
                break
        data = bytearray()
        while (byte := self._byte()) != b"#":
            data += byte
            if len(data) > MAX_PACKET:
                raise ConnectionError("a packet longer than gdb's PacketSize")
        self._byte(), self._byte()          # the checksum: TCP already guards the bytes
        self.sock.sendall(b"+")
        return unescape(data)

    def keep(self, data):
        """Bytes that came while the guest ran: keep them for the command
        loop; True if gdb asked for an interrupt among them (a 0x03 inside
        a packet, say in X's binary data, is the packet's)."""
        kept, interrupt = bytearray(), False
        for byte in data:
            if self.checksum_left:
                self.checksum_left -= 1
            elif self.in_packet:
                if byte == ord("#"):
                    self.in_packet, self.checksum_left = False, 2
            elif byte == 0x03:
                interrupt = True
                continue
            elif byte == ord("$"):
                self.in_packet = True
            kept.append(byte)
        self.buffer += kept
        return interrupt

    def resume(self):
        """The guest runs again: what gdb sent after its resume packet is
        read as keep() reads it.  True if that holds an interrupt request."""
        leftover, self.buffer = self.buffer, b""
        self.in_packet, self.checksum_left = False, 0
        return self.keep(leftover)

    def send(self, text):
        data = text.encode("latin-1") if isinstance(text, str) else text
        self.last_sent = b"$" + data + b"#%02x" % (sum(data) & 0xFF)
        self.sock.sendall(self.last_sent)

    def send_last(self, text):
        """The reply before closing: wait a moment for its +, as closing a
        socket with unread bytes resets it, and gdb could lose the reply."""
        self.send(text)
        self.sock.settimeout(LAST_ACK_TIMEOUT)
        while self._byte() != b"+":
            pass



def hex_number(text):
    """A hex field of a packet.  Digits only: int(text, 16) would also take
    a sign, underscores, "0x" and spaces, none of which gdb sends."""
    if not text or not HEX_DIGITS.issuperset(text):
        raise ValueError(f"not a hex number: {text!r}")
    return int(text, 16)


def hex_fields(text, count):
    """`count` comma-separated hex fields, or ValueError."""
    fields = text.split(",")
    if len(fields) != count:
        raise ValueError(f"want {count} fields: {text!r}")
    return [hex_number(field) for field in fields]


def hex_bytes(text):
    if len(text) % 2 or not HEX_DIGITS.issuperset(text):
        raise ValueError(f"not hex bytes: {text!r}")
    return bytes.fromhex(text)


def unescape(data):
    out, escaped = bytearray(), False
    for byte in data:
        if escaped:
            out.append(byte ^ 0x20)
            escaped = False
        elif byte == 0x7D:
            escaped = True
        else:
            out.append(byte)
    return bytes(out)


class Debugger:
    def __init__(self, machine, port):
        self.machine = machine
        self.vcpu = machine.vcpu
        self.xlen = machine.vcpu.xlen
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.conn = None
        self.breakpoints = {}        # address -> Unicorn hook handle
        self.watchpoints = {}        # (kind, address, length) -> Unicorn hook handle
        self.skip = None             # (kind, address) to let pass once on resuming
        self.stepping = False
        self.guest_running = False
        self.hit = None              # the watchpoint that stopped the guest: (kind, address)
        self.arrived = None          # a connection accepted while the guest ran
        self.killed = False          # `k` before the first instruction (--gdb-wait)
        self.stop_lock = threading.Lock()
        self.stop_wanted = False     # the debugger stopped the guest; the run loop has not seen it
        machine.bus.watch = self.mmio_watch
        machine.bus.last_written = {}

    def start(self, wait=False):
        """Wait for gdb now (--gdb-wait), or let it connect while the guest runs."""
        if wait:
            self._attach(self._accept())
            self.killed = self.serve(f"S{SIGTRAP:02x}", announce=False) == "kill"
        else:
            self._listen_in_background()

    def _listen_in_background(self):
        threading.Thread(target=self._accept_later, daemon=True).start()

    # -- the connection ----------------------------------------------------------

    def _accept(self):
        sock, _ = self.listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _accept_later(self):
        # Without --gdb-wait the guest runs at once; when gdb connects, stop
        # it so the run loop can hand the connection over (see stopped()).
        self.arrived = self._accept()
        self._request_stop()
        while self.stop_wanted:
            time.sleep(REPEAT_STOP)
            self._repeat_stop()

    def _request_stop(self):
        """Stop the guest for the debugger: a client arrived, sent Ctrl-C or
        went away.  Unicorn drops a stop that comes while no run is under way
        (the run loop between two runs, say dropping the last client), so the
        request stands until stopped() takes it, and is repeated meanwhile."""
        with self.stop_lock:
            self.stop_wanted = True
            self.vcpu.stop()

    def _repeat_stop(self):
        with self.stop_lock:
            if self.stop_wanted:
                self.vcpu.stop()

    def _attach(self, sock):
        self.conn = Connection(sock)
        threading.Thread(target=self._watch_for_interrupt, daemon=True).start()

    def _watch_for_interrupt(self):
        # While the guest runs, keep what gdb sends for the command loop and
        # stop the guest on Ctrl-C (0x03), or when gdb goes away: the run
        # loop then drops the connection and the guest runs on.
        conn = self.conn
        while self.conn is conn:
            self._repeat_stop()
            try:
                readable, _, _ = select.select([conn.sock], [], [], REPEAT_STOP)
                if readable and not self.guest_running:
                    time.sleep(REPEAT_STOP)   # the command loop's bytes: let it read them
                if not readable or not self.guest_running:
                    continue
                with conn.lock:
                    if not self.guest_running:
                        continue          # stopped meanwhile: the bytes are the command loop's
                    data = conn.sock.recv(4096, socket.MSG_DONTWAIT)
                    if not data or conn.keep(data):
                        self._request_stop()
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                self._request_stop()      # the connection is gone
                return

    # -- exits the run loop hands over ------------------------------------------------

    def stopped(self, exit):
        """The guest stopped for the debugger: report it, serve gdb. Returns
        'continue', or 'kill' to end the run."""
        with self.stop_lock:
            self.stop_wanted = False
        if self.conn is not None:
            with self.conn.lock:
                self.guest_running = False
        self.guest_running = False
        if self.conn is None and self.arrived is not None:
            self._attach(self.arrived)
            self.arrived = None
            return self.serve(f"S{SIGTRAP:02x}", announce=False)
        if self.conn is None:
            return "continue"
        if exit.reason is ExitReason.INTERRUPTED:
            reply = f"S{SIGINT:02x}"
        elif self.hit is not None:
            kind, address = self.hit
            prefix = {"write": "watch", "read": "rwatch", "access": "awatch"}[kind]
            reply = f"T{SIGTRAP:02x}{prefix}:{address:x};"
            self.skip = (kind, address)
            self.hit = None
        else:
            reply = f"T{SIGTRAP:02x}swbreak:;" if self.vcpu.pc in self.breakpoints \
                else f"S{SIGTRAP:02x}"
        return self.serve(reply)

    def owns(self, exit):
        """Is this exit the debugger's to report (rather than the run's end)?"""
        if exit.reason is ExitReason.INTERRUPTED:
            return self.stop_wanted      # else a signal stopped it (Ctrl-C, SIGTERM): the run ends
        if self.conn is None:
            return False
        if exit.reason is ExitReason.LIMIT and self.stepping:
            return True
        return exit.reason is ExitReason.BREAKPOINT

    def finished(self, code):
        with self.stop_lock:
            self.stop_wanted = False     # nothing left to stop
        if self.conn is not None:
            try:
                self.conn.send_last(f"W{code & 0xFF:02x}")
            except OSError:
                pass
            self.close(listen=False)

    def close(self, listen=True):
        """Drop the connection; a later gdb may connect again, as with QEMU.
        The guest runs on as after `D`: a client that went away without
        detaching leaves no breakpoint or watchpoint behind."""
        if self.conn is not None:
            self.conn.sock.close()
            self.conn = None
            if listen:
                self._remove_all()
                self._prepare_counter(step=False)
                self._listen_in_background()

    # -- the command loop ------------------------------------------------------------

    def serve(self, stop_reply, announce=True):
        """Tell gdb why the guest stopped, then answer it until it resumes the guest.
        (When gdb has just connected it asks with '?' instead.)"""
        self.last_stop = stop_reply
        self._prepare_counter(step=False)
        try:
            if announce:
                self.conn.send(stop_reply)
        except OSError:
            self.close()
            return "continue"
        while True:
            try:
                packet = self.conn.receive().decode("latin-1")
            except (ConnectionError, OSError):
                self.close()
                return "continue"
            try:
                action = self.handle(packet)
            except OSError:             # gdb went away in the middle of a reply
                self.close()
                return "continue"
            if action in ("continue", "step", "kill", "detach"):
                break
        if action == "kill":
            self.close(listen=False)
            return "kill"
        if action == "detach":
            self.close()
            return "continue"
        self._prepare_counter(step=action == "step")
        with self.conn.lock:
            self.guest_running = True
            if self.conn.resume():
                self._request_stop()
        return "continue"

    def handle(self, packet):
        """One packet; returns an action for the ones that resume the guest.
        A packet that does not parse gets the protocol's error reply."""
        try:
            return self._dispatch(packet)
        except ValueError:
            return self.reply(MALFORMED)

    def _dispatch(self, packet):
        command = packet[:1]
        if packet == "\x03":
            return None
        if packet.startswith("qSupported"):
            return self.reply(f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;swbreak+")
        if packet.startswith("qXfer:features:read:target.xml:"):
            offset, length = hex_fields(packet.rsplit(":", 1)[1], 2)
            document = target_xml(self.xlen)
            chunk = document[offset:offset + length]
            return self.reply(("l" if offset + length >= len(document) else "m") + chunk)
        if packet in ("qAttached",):
            return self.reply("1")
        if packet == "qC":
            return self.reply("QC1")
        if packet == "qfThreadInfo":
            return self.reply("m1")
        if packet == "qsThreadInfo":
            return self.reply("l")
        if packet == "?":
            return self.reply(self.last_stop)
        if command == "g":
            return self.reply("".join(self._hex(self._register(n)) for n in range(33)))
        if command == "p":
            value = self._register(hex_number(packet[1:]))
            return self.reply(MALFORMED if value is None else self._hex(value))
        if command == "P":
            number, value = packet[1:].split("=")
            return self.reply("OK" if self._set_register(hex_number(number), self._unhex(value))
                              else MALFORMED)
        if command == "G":
            width = self.xlen // 4
            if len(packet) != 1 + 33 * width:
                raise ValueError("G wants x0-x31 and pc")
            values = [self._unhex(packet[1 + n * width:1 + (n + 1) * width]) for n in range(33)]
            for n, value in enumerate(values):
                self._set_register(n, value)
            return self.reply("OK")
        if command == "m":
            address, length = hex_fields(packet[1:], 2)
            if length > PACKET_SIZE // 2:
                raise ValueError("more than a reply packet holds")
            data = self._read_memory(address, length)
            return self.reply(BAD_ADDRESS if data is None else data.hex())
        if command in ("M", "X"):
            where, data = packet[1:].split(":", 1)
            address, length = hex_fields(where, 2)
            raw = hex_bytes(data) if command == "M" else data.encode("latin-1")
            if len(raw) != length:
                raise ValueError("the data is not as long as the packet says")
            return self.reply("OK" if self._write_memory(address, raw) else BAD_ADDRESS)
        if command in ("Z", "z"):
            return self.reply(self._breakpoint(command == "Z", packet[1:]))
        if packet.startswith("vCont?"):
            return self.reply("vCont;c;C;s;S")
        if packet.startswith("vCont;"):
            first = packet[6:].split(";")[0]
            return "step" if first[:1] in ("s", "S") else "continue"
        if command in ("c", "C"):
            return "continue"
        if command in ("s", "S"):
            return "step"
        if command == "k" or packet.startswith("vKill"):
            return "kill"
        if command == "D":
            self.conn.send_last("OK")
            return "detach"
        if command in ("H", "T") or packet.startswith("qSymbol"):
            return self.reply("OK")
        return self.reply("")

    def reply(self, text):
        self.conn.send(text)
        return None

    # -- registers and memory --------------------------------------------------------

    def _hex(self, value):
        return (value & ((1 << self.xlen) - 1)).to_bytes(self.xlen // 8, "little").hex()

    def _unhex(self, text):
        """A register value as gdb sends it: xlen/4 hex digits, little-endian."""
        if len(text) != self.xlen // 4:
            raise ValueError(f"a register is {self.xlen // 4} hex digits: {text!r}")
        return int.from_bytes(hex_bytes(text), "little")

    def _register(self, number):
        if number < 32:
            return self.vcpu.x(number)
        if number == PC_REGNUM:
            return self.vcpu.pc
        if number == PRIV_REGNUM:
            return self.vcpu.privilege
        csr = CSRS.get(number - CSR_REGNUM_BASE)
        return self.vcpu.read_csr(csr[1]) if csr else None

    def _set_register(self, number, value):
        if number < 32:
            self.vcpu.set_x(number, value)
        elif number == PC_REGNUM:
            self.vcpu.pc = value
        elif number == PRIV_REGNUM:
            if value not in (0, 1, 3):       # U, S, M: 2 is reserved
                return False
            self.vcpu.privilege = value
        elif number - CSR_REGNUM_BASE in CSRS:
            self.vcpu.write_csrs({CSRS[number - CSR_REGNUM_BASE][1]: value})
        else:
            return False
        return True

    def _physical(self, address, length):
        """The region and physical address gdb's virtual address reaches, or (None, None)."""
        physical = self.vcpu.translate(address)
        region = None if physical is None else self.machine.bus.region_at(physical)
        if region is None or physical + length > region.end:
            return None, None
        return region, physical

    def _read_memory(self, address, length):
        if address >> self.xlen:
            return None
        try:
            region, physical = self._physical(address, length)
        except UcError:
            return None
        if region is None:
            return None
        if region.kind == "mmio":
            # Reading a device register has side effects (it would pop the
            # UART's receive FIFO, say), so gdb sees the last value the
            # guest wrote there instead.
            written = self.machine.bus.last_written
            return bytes(written.get(physical + n, 0) for n in range(length))
        return bytes(self.vcpu.uc.mem_read(physical, length))

    def _write_memory(self, address, data):
        if address >> self.xlen:
            return False
        try:
            region, physical = self._physical(address, len(data))
        except UcError:
            return False
        if region is None or region.kind == "mmio" or not self._writable(region):
            return False
        try:
            self.vcpu.uc.mem_write(physical, data)
            self.vcpu.uc.ctl_remove_cache(physical, physical + len(data))
            return True
        except UcError:
            return False

    @staticmethod
    def _writable(region):
        # A read-only passthrough window is a PROT_READ mapping of the file:
        # Unicorn's mem_write would store straight into it and the host
        # would die of SIGSEGV.  gdb gets an error instead, as the guest
        # gets a store access fault.
        return not (region.kind == "passthrough" and region.device.mode == "ro")

    # -- breakpoints, watchpoints, stepping --------------------------------------------

    def _breakpoint(self, insert, arguments):
        kind, address, length = arguments.split(";")[0].split(",")
        address, length = hex_number(address), hex_number(length)
        if address >> self.xlen or length == 0 or (address + length - 1) >> self.xlen:
            raise ValueError("a breakpoint outside the address space, or of no length")
        if kind in ("0", "1"):
            if insert and address not in self.breakpoints:
                self.breakpoints[address] = self.vcpu.uc.hook_add(
                    UC_HOOK_CODE, self._on_breakpoint, None, address, address)
            elif not insert and address in self.breakpoints:
                self.vcpu.uc.hook_del(self.breakpoints.pop(address))
            self.vcpu.uc.ctl_remove_cache(address, address + 4)
            return "OK"
        if kind in WATCH_KINDS:
            key = (WATCH_KINDS[kind], address, length)
            if insert and key not in self.watchpoints:
                self.watchpoints[key] = self._add_memory_watch(*key)
            elif not insert and key in self.watchpoints:
                handle = self.watchpoints.pop(key)
                if handle is not None:
                    self.vcpu.uc.hook_del(handle)
            self.vcpu.uc.ctl_flush_tb()
            return "OK"
        return ""

    def _add_memory_watch(self, kind, address, length):
        region = self.machine.bus.region_at(address)
        if region is not None and region.kind == "mmio":
            return None                  # the bus checks device accesses itself: mmio_watch
        types = {"write": UC_HOOK_MEM_WRITE, "read": UC_HOOK_MEM_READ,
                 "access": UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE}[kind]
        return self.vcpu.uc.hook_add(types, self._on_memory_watch, kind, address,
                                     address + length - 1)

    def _on_breakpoint(self, uc, address, size, user_data):
        if self.skip == ("break", address):
            self.skip = None             # resuming from this breakpoint: run it once
            return
        self.skip = ("break", address)
        self.vcpu.request_exit(Exit(ExitReason.BREAKPOINT, address), inside_access=False)

    def _on_memory_watch(self, uc, access, address, size, value, kind):
        # RAM: the access happens; stop before the next instruction.
        self.hit = (kind, address)
        counter = self.vcpu.clocks.instructions
        counter.set_limit(counter.count)
        self.vcpu.request_exit(Exit(ExitReason.BREAKPOINT, self.vcpu.pc), inside_access=False)

    def mmio_watch(self, address, is_write):
        """Called by the bus before a device access: True to stop the guest
        before the access reaches the device (it runs again on resuming)."""
        for kind, start, length in self.watchpoints:
            wanted = kind == "access" or (kind == "write") == is_write
            if wanted and start <= address < start + max(length, 1):
                if self.skip == (kind, start):
                    self.skip = None
                    return False
                self.hit = (kind, start)
                self.vcpu.request_exit(Exit(ExitReason.BREAKPOINT, self.vcpu.pc),
                                       inside_access=False)
                return True
        return False

    def _prepare_counter(self, step):
        """Single steps and RAM watchpoints need the exact instruction count."""
        self.stepping = step
        watching_ram = any(handle is not None for handle in self.watchpoints.values())
        # The machine's own rule decides, with the debugger's needs added.
        self.machine.set_up_instruction_count(self.machine.budget, step or watching_ram)
        if step:
            counter = self.vcpu.clocks.instructions
            counter.set_limit(counter.count + 1)

    def _remove_all(self):
        for handle in self.breakpoints.values():
            self.vcpu.uc.hook_del(handle)
        for handle in self.watchpoints.values():
            if handle is not None:
                self.vcpu.uc.hook_del(handle)
        self.breakpoints.clear()
        self.watchpoints.clear()
        self.skip = self.hit = None
        self.vcpu.uc.ctl_flush_tb()
