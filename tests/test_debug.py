"""pdb on the device side (--break-on) and the trace's filters, as a student
uses them: scripted stdin into a real pdb, real firmware on the real vCPU."""
import os
import random

import pytest

import oracle
from conftest import firmware, minivm


def run_with_pdb(script, *args, env=None):
    return minivm("run", *args, input=script.encode(), env=env, timeout=120)


def test_break_on_a_register_stops_in_the_device_model():
    done = run_with_pdb("p offset, size, value\nn\np self.lcr\nq\n", "hello",
                        "--break-on", "uart0.THR")
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert out.startswith("minivm: guest pc 0x80000068 <puts+0x1c>: sb a3, 0(a4)\n"
                          "minivm: uart0.THR write 0x48: pdb in Uart16550.write()\n")
    assert "uart.py" in out and "write()" in out
    assert "(Pdb) (0, 1, 72)" in out          # offset 0 (THR), one byte, 'H'
    # q finished the access and stopped breaking: the whole greeting follows, once.
    assert out.count("Hello from minivm firmware!") == 1
    assert out.endswith(oracle.golden(firmware("hello"))[0].decode()[-5:])


def test_break_on_works_on_rv32_too():
    done = run_with_pdb("q\n", "hello-rv32", "--break-on", "uart0")
    assert done.returncode == 0
    assert "minivm: uart0.LSR read: pdb in Uart16550.read()" in done.stdout.decode()


def test_pure_python_virtqueue_can_be_stepped(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(random.Random(3).randbytes(128 * 1024))
    source = os.path.join(os.path.dirname(__import__("minivm").__file__),
                          "devices", "virtqueue.py")
    line = next(number for number, text in enumerate(open(source), 1)
                if text.strip().startswith("def chain("))
    script = f"b {source}:{line + 2}\nc\np head\nq\n"
    env = dict(os.environ, MINIVM_PURE="1")
    done = run_with_pdb(script, "virtio_blk", "--virtio-blk", image,
                        "--break-on", "virtio0.QueueNotify", env=env)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "virtio0.QueueNotify write 0x0: pdb in VirtioMmio.write()" in out
    assert "virtqueue.py" in out and "chain()" in out
    assert "(Pdb) 0\n" in out                   # the first chain's head


def test_unknown_break_on_device_is_one_line():
    done = minivm("run", "hello", "--break-on", "disk9.DATA")
    assert done.returncode == 2
    assert done.stderr.decode().startswith("minivm: --break-on: no device disk9")


@pytest.mark.parametrize("spec, registers", [
    ("uart0.NOSUCH", "DLL, DLM, FCR, IER, IIR, LCR, LSR, MCR, MSR, RBR, SCR, THR"),
    ("clint.mtime_lo", "msip, mtime, mtime_hi, mtimecmp, mtimecmp_hi"),
])
def test_unknown_break_on_register_is_one_line(spec, registers):
    done = minivm("run", "hello", "--break-on", spec)
    device, _, register = spec.partition(".")
    assert (done.returncode, done.stderr.decode()) == (
        2, f"minivm: --break-on: {device} has no register {register} "
           f"(registers: {registers})\n")


def test_trace_filters():
    traps = minivm("run", "traps", "--trace=traps,irq").stderr.decode().splitlines()
    assert traps and all(" TRAP " in line or " IRQ " in line for line in traps)
    assert any("machine timer interrupt" in line for line in traps)
    mmio = minivm("run", "hello", "--trace=mmio").stderr.decode().splitlines()
    assert mmio and all(" MMIO " in line for line in mmio)


def test_trace_decodes_virtio_requests(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(256 * 1024))
    done = minivm("run", "virtio_blk", "--virtio-blk", image, "--trace=virtio")
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 0
    assert "VIRTIO virtio0 request 0: IN sector 0 length 4096 -> OK" in lines[0]
    assert sum(" IN " in line for line in lines) == 17      # 16 in the batch, 1 read-back
    assert any("OUT sector 511 length 512 -> OK" in line for line in lines)
    assert any("FLUSH sector 0 length 0 -> OK" in line for line in lines)


def test_unknown_trace_category_is_one_line():
    done = minivm("run", "hello", "--trace=bogus")
    assert done.returncode == 2 and "unknown trace categories bogus" in done.stderr.decode()
