"""The Python API, the run loop's exits, and the promises the loop keeps:
every device access happens exactly once, and the same firmware gives the
same trace byte for byte."""
import io

import pytest

import oracle
from conftest import firmware
from minivm.cpu import ExitReason
from minivm.devices.device import Device
from minivm.errors import MinivmError
from minivm.machine import EXIT_LIMIT, MEMORY_MAP, Machine

UART_SCR = 7


def test_three_lines_run_a_machine():
    machine = Machine(firmware("hello"))
    result = machine.run()
    assert (result.exit_code, result.reason) == (0, ExitReason.FINISH)
    assert result.output == oracle.golden(firmware("hello"))[0]
    assert machine.devices["uart0"].scr == 0xA5   # devices are reachable by name


def test_each_guest_store_reaches_the_device_once():
    # bench_mmio stores to the UART scratch register 1,000,000 times, then
    # reads it once and exits 0 only if the read returned the last byte.
    machine = Machine(firmware("bench_mmio"))
    result = machine.run()
    traps = machine.devices["uart0"].traps
    assert result.exit_code == 0
    assert traps[UART_SCR, 1, True, 0] == 1_000_000
    assert traps[UART_SCR, 1, False, 0] == 1


@pytest.mark.parametrize("slice_size", [1, 3, 7, 100])
def test_stopping_and_resuming_at_any_instruction_changes_nothing(slice_size):
    # Stop the vCPU every `slice_size` instructions, wherever that falls
    # (on a UART store, in the middle of a polling loop) and resume: the
    # output and the number of device accesses must be exactly those of an
    # uninterrupted run (docs/design.md, U4: nothing executes twice).
    reference = Machine(firmware("hello"))
    expected = reference.run()
    machine = Machine(firmware("hello"))
    budget = 0
    while True:
        budget += slice_size
        result = machine.run(max_insns=budget)
        if result.reason is not ExitReason.LIMIT:
            break
    assert result.exit_code == 0
    assert result.output == expected.output
    assert machine.devices["uart0"].traps == reference.devices["uart0"].traps
    assert machine.devices["finisher"].traps == reference.devices["finisher"].traps


def test_instruction_budget_is_exact():
    result = Machine(firmware("bench_loop"), max_insns=12345).run()
    assert (result.exit_code, result.reason) == (EXIT_LIMIT, ExitReason.LIMIT)
    assert result.instructions == 12345


def test_instruction_count_is_the_same_every_run():
    counts = {Machine(firmware("hello"), max_insns=10**9).run().instructions for _ in range(3)}
    assert len(counts) == 1 and counts.pop() > 1000


def trace_of(image):
    stream = io.StringIO()
    result = Machine(firmware(image), trace=stream).run()
    return result, stream.getvalue()


def test_trace_is_identical_across_runs():
    first, second = trace_of("hello")[1], trace_of("hello")[1]
    assert first == second
    assert first.count("\n") > 200


def test_trace_tells_each_exit_with_names():
    result, trace = trace_of("hello")
    lines = trace.splitlines()
    thr = [line for line in lines if "uart0.THR" in line]
    assert len(thr) == len(result.output)
    assert "sb " in thr[0] and "write 0x48 'H'" in thr[0]
    assert any("uart0.LSR    read  0x60" in line for line in lines)
    assert any("uart0.DLL" in line and "write 0x03" in line for line in lines)
    assert "finisher.FINISHER write 0x00005555 PASS" in lines[-2]
    assert lines[-1].endswith("FINISH exit status 0")
    # Every line starts with the instruction count, then pc and symbol.
    count, pc, symbol = lines[0].split()[:3]
    assert int(count) > 0 and pc.startswith("0x000000008") and "+0x" in symbol


def test_trace_counts_grow():
    _, trace = trace_of("hello")
    counts = [int(line.split()[0]) for line in trace.splitlines()]
    assert counts == sorted(counts)


def test_finisher_reset_reboots_and_keeps_ram():
    result, trace = trace_of("reset")
    assert result.output == oracle.golden(firmware("reset"))[0]
    assert result.exit_code == 0
    assert "RESET  machine reset" in trace


def test_unmapped_access_without_a_handler_is_a_double_fault():
    result = Machine(firmware("hello"), memory=4096).run()
    assert result.exit_code == 125
    assert result.message.startswith("double fault: instruction access fault at pc 0x0")
    assert "for store/AMO access fault at pc 0x80000" in result.message


def test_overlapping_regions_are_refused():
    machine = Machine(firmware("hello"))
    with pytest.raises(MinivmError, match="overlaps uart0"):
        machine.bus.add_device("intruder", MEMORY_MAP["uart0"].base + 0x80, Device())


def test_ram_is_never_reached_outside_its_range():
    machine = Machine(firmware("hello"), memory=1 << 20)
    with pytest.raises(ValueError):
        machine.ram.read(machine.ram.base + (1 << 20) - 2, 4)
    with pytest.raises(ValueError):
        machine.ram.write(machine.ram.base - 1, b"x")


def test_memory_map_matches_qemu_virt():
    machine = Machine(firmware("hello"), memory="256M")
    assert machine.memory_map() == [
        ("finisher", 0x0010_0000, 0x1000, None),
        ("clint", 0x0200_0000, 0x10000, None),
        ("plic", 0x0C00_0000, 0x600000, None),
        ("uart0", 0x1000_0000, 0x100, 10),
        *[(f"virtio{n}", 0x1000_1000 + n * 0x1000, 0x1000, 1 + n) for n in range(8)],
        ("ram", 0x8000_0000, 256 << 20, None),
    ]
