"""The vCPU's trap-and-emulate machinery: decoding, interrupt choice, and
whole runs that take traps and interrupts (determinism, hostile guests).

The firmware-level behaviour (every trap and interrupt against QEMU) is in
test_conformance.py; these tests pin down the pieces and the promises."""
import io

import pytest
from unicorn.riscv_const import UC_RISCV_REG_MTVEC

import oracle
from conftest import firmware, minivm
from minivm.cpu import isa, traps
from minivm.cpu.traps import MEI, MSI, MTI, PRV_M, PRV_S, PRV_U, SEI, STI
from minivm.machine import Machine

# Encodings from riscv64-unknown-elf-as (objdump -M no-aliases).
ENCODINGS = {
    "lb a0,-5(a1)": (0xffb58503, (11, -5, 1, 10, True, False, 4)),
    "lhu a2,6(sp)": (0x00615603, (2, 6, 2, 12, False, False, 4)),
    "sd a3,-16(s0)": (0xfed43823, (8, -16, 8, None, False, True, 4)),
    "c.lw a0,4(a1)": (0x41c8, (11, 4, 4, 10, True, False, 2)),
    "c.ld s1,8(a2)": (0x6604, (12, 8, 8, 9, True, False, 2)),
    "c.sw a0,64(a1)": (0xc1a8, (11, 64, 4, None, True, True, 2)),
    "c.sdsp a5,504(sp)": (0xffbe, (2, 504, 8, None, False, True, 2)),
    "c.ldsp a5,504(sp)": (0x77fe, (2, 504, 8, 15, True, False, 2)),
    "amoadd.w a0,a1,(a2)": (0x00b6252f, (12, 0, 4, 10, True, True, 4)),
    "lr.d a0,(a3)": (0x1006b52f, (13, 0, 8, 10, True, False, 4)),
    "fld ft1,16(a0)": (0x01053087, (10, 16, 8, None, False, False, 4)),
}


@pytest.mark.parametrize("text", ENCODINGS)
def test_decode_memory_access(text):
    bits, expected = ENCODINGS[text]
    assert tuple(isa.decode_memory_access(bits)) == expected


def test_instructions_without_memory_access_decode_to_none():
    assert isa.decode_memory_access(0x0505) is None          # c.addi a0,1
    assert isa.decode_memory_access(0xc0102573) is None      # csrr a0,time


def test_decode_csr_read_of_time():
    assert isa.decode_csr_access(0xc0102573) == (0xC01, 10, 0, isa.CSRRS)   # csrr a0, time


# -- which interrupt the hart takes (Privileged spec 3.1.9) -------------------------

def bit(*causes):
    return sum(1 << cause for cause in causes)


def test_priority_order_among_machine_interrupts():
    everything = bit(MEI, MSI, MTI)
    assert traps.interrupt_to_take(everything, everything, PRV_M, traps.MSTATUS_MIE, 0) == MEI
    assert traps.interrupt_to_take(bit(MSI, MTI), everything, PRV_M, traps.MSTATUS_MIE, 0) == MSI


def test_machine_interrupts_need_mie_only_in_m_mode():
    assert traps.interrupt_to_take(bit(MTI), bit(MTI), PRV_M, 0, 0) is None
    assert traps.interrupt_to_take(bit(MTI), bit(MTI), PRV_S, 0, 0) == MTI
    assert traps.interrupt_to_take(bit(MTI), 0, PRV_U, 0, 0) is None      # not in mie


def test_delegated_interrupts_follow_sie_and_lose_to_machine_ones():
    delegated = bit(SEI, STI)
    assert traps.interrupt_to_take(bit(SEI), bit(SEI), PRV_S, 0, delegated) is None
    assert traps.interrupt_to_take(bit(SEI), bit(SEI), PRV_S, traps.MSTATUS_SIE, delegated) == SEI
    assert traps.interrupt_to_take(bit(SEI), bit(SEI), PRV_U, 0, delegated) == SEI
    assert traps.interrupt_to_take(bit(SEI), bit(SEI), PRV_M, traps.MSTATUS_MIE
                                   | traps.MSTATUS_SIE, delegated) is None
    assert traps.interrupt_to_take(bit(SEI, MTI), bit(SEI, MTI), PRV_U, 0, delegated) == MTI


# -- whole runs ----------------------------------------------------------------------

def traced(image, **options):
    stream = io.StringIO()
    result = Machine(firmware(image), trace=stream, **options).run()
    return result, stream.getvalue()


def test_interrupt_driven_trace_is_identical_across_runs():
    typed = oracle.golden_input(firmware("uart_echo"))
    first = traced("uart_echo", input=typed)
    second = traced("uart_echo", input=typed)
    assert first[0].exit_code == 0 and first[1] == second[1]
    irqs = [line for line in first[1].splitlines() if " IRQ " in line]
    assert irqs and all("machine external interrupt -> handler" in line for line in irqs)


def test_trace_names_each_trap_and_interrupt():
    result, trace = traced("traps")
    assert result.exit_code == 0
    for words in ("TRAP   ecall from M-mode (tval 0x0) -> handler",
                  "TRAP   illegal instruction (tval 0xc0001073) -> handler",
                  "TRAP   breakpoint", "TRAP   load access fault (tval 0x40000)",
                  "TRAP   instruction access fault (tval 0x40000)",
                  "TRAP   ecall from S-mode", "TRAP   ecall from U-mode",
                  "IRQ    machine timer interrupt -> handler"):
        assert words in trace, words
    assert trace == traced("traps")[1]


def test_tracing_does_not_change_what_the_guest_does():
    # The trace adds an exact instruction counter; interrupts must still land
    # where they land without it (virtual time counts blocks in both), so the
    # guest ends at the same virtual time, having taken the same interrupts.
    plain = Machine(firmware("bench_irq"))
    assert plain.run().exit_code == 0
    stream = io.StringIO()
    traced_machine = Machine(firmware("bench_irq"), trace=stream)
    assert traced_machine.run().exit_code == 0
    assert traced_machine.vcpu.clocks.time.count == plain.vcpu.clocks.time.count
    assert stream.getvalue().count(" IRQ ") == 20_000


# Every device region, at its base and inside its page (fetch_device.elf
# checks the CLINT and the PLIC against QEMU, which runs some other devices'
# register bytes as code).
DEVICE_ADDRESSES = [0x100000, 0x2000000, 0xc000000, 0x10000000, 0x10000800, 0x10001000,
                    0x10008000, 0x10200000]


@pytest.mark.parametrize("address", DEVICE_ADDRESSES, ids=hex)
def test_a_fetch_from_a_device_is_an_instruction_access_fault(address, tmp_path):
    # hello.elf sets no mtvec (0, where nothing is mapped), so the fault's
    # own trap entry faults too: the run ends naming both.
    disk = tmp_path / "disk.img"           # so that the PIO disk is there
    disk.write_bytes(bytes(512))
    machine = Machine(firmware("hello"), disk=str(disk))
    machine.vcpu.pc = address
    result = machine.run()
    assert result.exit_code == 125
    assert result.message.startswith(
        f"double fault: instruction access fault at pc 0x0 (tval 0x0) entering the trap "
        f"handler (mtvec 0x0) for instruction access fault at pc 0x{address:x} "
        f"(tval 0x{address:x})")


def test_a_trap_handler_in_a_device_is_a_double_fault():
    machine = Machine(firmware("hello"))
    machine.vcpu.write_csrs({UC_RISCV_REG_MTVEC: 0x10000000})
    machine.vcpu.pc = 0x40000             # nothing here: a fault to enter the handler
    result = machine.run()
    assert result.exit_code == 125
    assert result.message.startswith(
        "double fault: instruction access fault at pc 0x10000000 (tval 0x10000000) "
        "entering the trap handler (mtvec 0x10000000)")


def test_a_guest_that_can_never_wake_ends_with_one_line():
    done = minivm("run", "hang")
    assert done.returncode == 125
    assert done.stdout == b"waiting for an interrupt that can never come\n"
    assert done.stderr.decode().startswith(
        "minivm: guest halted (wfi) with nothing that could wake it (pc 0x8")


def test_host_clock_runs_timer_firmware():
    done = minivm("run", "sleep", "--clock", "host")
    assert done.returncode == 0
    assert done.stdout == oracle.golden(firmware("sleep"))[0]


def test_virtual_time_skips_ahead_in_wfi():
    # sleep.elf sleeps 3 x 10 ms of virtual time in wfi: 300,000 ticks of
    # mtime, which running would take 30 M instructions; skipping, the guest
    # runs only a few thousand.
    machine = Machine(firmware("sleep"), max_insns=10**9)
    result = machine.run()
    assert result.exit_code == 0
    assert machine.clint.mtime >= 300_000
    assert result.instructions < 100_000


def test_a_guest_that_never_uses_time_runs_free():
    # No clock hook may be attached: free-running guest code must run as
    # Unicorn compiles it, with no per-block or per-instruction callback.
    machine = Machine(firmware("bench_loop"))
    assert machine.run().exit_code == 0
    assert not machine.vcpu.clocks.time.attached
    assert not machine.vcpu.clocks.instructions.attached


def test_terminal_input_is_raw_and_ctrl_a_x_quits():
    # A real pseudo-terminal: keys reach the guest as typed (no line
    # editing, no echo by the host), and Ctrl-A X ends the run like QEMU.
    import os
    import pty
    import subprocess
    import sys
    import time
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "minivm", "run", "uart_echo"],
                               stdin=terminal, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=os.path.dirname(__file__))
    os.close(terminal)
    assert process.stdout.readline() == b"uart_echo: type away, q quits\n"
    os.write(controller, b"hi\r")
    time.sleep(0.5)
    os.write(controller, b"\x01x")
    stdout, stderr = process.communicate(timeout=20)
    os.close(controller)
    assert process.returncode == 130
    assert stdout == b"HI\r"            # echoed upper-cased; CR stays CR (raw mode)
    assert stderr == b"minivm: interrupted\n"
