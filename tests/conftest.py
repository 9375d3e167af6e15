import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import settings

import oracle

# Property tests (hypothesis) draw their examples from a profile.  "default"
# is what `pytest` runs: derandomized (the same examples on every run and
# every machine) and bounded, so the suite's result never depends on luck.
# "fuzz" is the long hunt: fresh random examples, many of them, and failures
# kept in .hypothesis/ so the next run replays them first.  Choose it with
# HYPOTHESIS_PROFILE=fuzz (the README shows the command); FUZZ_EXAMPLES=N
# sets how many examples each test draws there.
settings.register_profile("default", derandomize=True, max_examples=300, deadline=None,
                          database=None)
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", 20_000)),
                          deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

FIRMWARE = oracle.FIRMWARE


@pytest.fixture(autouse=True, scope="session")
def private_elf_cache(tmp_path_factory):
    # Keep the tests' parsed-ELF cache out of the user's ~/.cache (and let
    # every test session start cold); subprocesses inherit the variable.
    os.environ["MINIVM_CACHE_DIR"] = str(tmp_path_factory.mktemp("elf-cache"))


# What the disk and passthrough demos write into their last sector.
PATTERN = b"".join((0xD15C0000 | i).to_bytes(4, "little") for i in range(128))


def noise(size, seed=0):
    """`size` bytes that look random but are the same on every run (fixed seed)."""
    import random
    return random.Random(seed).randbytes(size)


def fnv1a(data):
    """The 32-bit FNV-1a checksum the disk and passthrough demos print."""
    value = 2166136261
    for byte in data:
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return value


def firmware(name):
    return FIRMWARE / f"{name}.elf"


def minivm(*args, input=None, timeout=120, env=None):
    """Run the minivm command line as a user would; returns CompletedProcess (bytes).

    It runs in the tests' own folder (no minivm/ there), so `python -m minivm`
    is the installed package, as it is for a user, not the source tree.
    """
    stdin = subprocess.DEVNULL if input is None else None   # never the developer's terminal
    return subprocess.run([sys.executable, "-m", "minivm", *map(str, args)],
                          input=input, stdin=stdin, capture_output=True, timeout=timeout,
                          cwd=os.path.dirname(__file__), env=env)


def needs(program, package):
    return pytest.mark.skipif(shutil.which(program) is None,
                              reason=f"{program} not installed (Debian package {package})")


needs_qemu = needs("qemu-system-riscv64", "qemu-system-misc")
needs_cross_compiler = needs("riscv64-unknown-elf-gcc", "gcc-riscv64-unknown-elf")


ROOT = oracle.ROOT


@pytest.fixture(scope="session")
def distributions(tmp_path_factory):
    """minivm's sdist and the wheel built from it, as `python -m build` makes
    them (without build isolation: no network needed) from a copy of this tree
    that an old build left a minivm.egg-info in, listing every file of labs/
    (setuptools reads that list back into the next sdist)."""
    tree, out = tmp_path_factory.mktemp("tree"), tmp_path_factory.mktemp("dist")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    (tree / "minivm.egg-info").mkdir()
    (tree / "minivm.egg-info" / "SOURCES.txt").write_text(
        "".join(f"{name}\n" for name in files if name.startswith("labs/")))
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check",
                    "--outdir", out, tree], check=True, capture_output=True, timeout=600)
    wheels, sdists = list(out.glob("minivm-*.whl")), list(out.glob("minivm-*.tar.gz"))
    assert len(wheels) == len(sdists) == 1
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="session")
def installed_minivm(distributions, tmp_path_factory):
    """A folder holding minivm as `pip install` puts it: the wheel, no checkout."""
    target = tmp_path_factory.mktemp("site-packages")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--target", target, distributions["wheel"]], check=True,
                   capture_output=True, timeout=300)
    return target
