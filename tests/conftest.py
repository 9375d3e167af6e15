import shutil
import subprocess
import sys

import pytest

import oracle

FIRMWARE = oracle.FIRMWARE


def firmware(name):
    return FIRMWARE / f"{name}.elf"


def minivm(*args, input=None, timeout=120):
    """Run the minivm command line as a user would; returns CompletedProcess (bytes)."""
    return subprocess.run([sys.executable, "-m", "minivm", *map(str, args)],
                          input=input, capture_output=True, timeout=timeout)


def needs(program, package):
    return pytest.mark.skipif(shutil.which(program) is None,
                              reason=f"{program} not installed (Debian package {package})")


needs_qemu = needs("qemu-system-riscv64", "qemu-system-misc")
needs_cross_compiler = needs("riscv64-unknown-elf-gcc", "gcc-riscv64-unknown-elf")
