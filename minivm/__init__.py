"""minivm: an educational RISC-V machine emulator.

Three device models side by side, as a hypervisor offers them: emulated
(a 16550 UART, a programmed-I/O disk), paravirtualized (virtio-mmio block)
and passthrough (host files mapped into guest memory).

    from minivm import Machine
    result = Machine("firmware/hello.elf").run()
"""
__version__ = "0.1.0"


def __getattr__(name):
    # Imported on first use, so `minivm --help` does not pay for Unicorn.
    if name in ("Machine", "RunResult"):
        from minivm import machine
        return getattr(machine, name)
    raise AttributeError(name)
