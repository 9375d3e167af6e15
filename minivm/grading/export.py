"""The Gradescope autograder zip: setup.sh, run_autograder, and minivm's source
with this lab (its hidden tests included).  Gradescope runs setup.sh once to
build its image and run_autograder per submission, as root."""
import os

from minivm.errors import MinivmError
from minivm.grading.lab import Lab

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image
# (Ubuntu).  It installs Python >= 3.10 and minivm (from the source tree in
# this zip, with the lab and its hidden tests) into /autograder/venv.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip python3-dev \\
    build-essential ca-certificates
PYTHON=""
for candidate in python3.13 python3.12 python3.11 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        PYTHON="$candidate"
        break
    fi
done
if [ -z "$PYTHON" ]; then       # an older base image: Python 3.11 from deadsnakes
    apt-get install -y --no-install-recommends software-properties-common
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update
    apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev
    PYTHON=python3.11
fi
"$PYTHON" -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --upgrade pip
/autograder/venv/bin/python -m pip install /autograder/source/minivm-src
# Fail the build now, not at the first submission, if minivm or the lab is broken.
/autograder/venv/bin/python -m minivm.grading --list | grep -qx '{lab}'
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission.  The grader copies
# /autograder/submission into a private folder per test by itself.
set -u
mkdir -p /autograder/results
cd /autograder
/autograder/venv/bin/python -m minivm.grading '{lab}' --submission /autograder/submission \\
    --output /autograder/results/results.json
status=$?
if [ "$status" -ne 0 ] || [ ! -s /autograder/results/results.json ]; then
    cat > /autograder/results/results.json <<EOF
{{"score": 0, "output": "The autograder could not grade this submission (minivm grade exited with status $status). Please tell the course staff.", "tests": []}}
EOF
fi
"""


def source_root():
    """minivm's source tree: beside this package (a checkout, or an editable
    install), else the working folder or one above it (`pip install .` puts
    the package elsewhere, without its pyproject.toml)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [here]
    folder = os.getcwd()
    while True:
        candidates.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for root in candidates:
        project = os.path.join(root, "pyproject.toml")
        if os.path.isfile(project) and os.path.isdir(os.path.join(root, "minivm")):
            with open(project, encoding="utf-8") as stream:
                if 'name = "minivm"' in stream.read():
                    return root
    raise MinivmError("--export-gradescope needs minivm's source tree: run it in a "
                     "minivm checkout")


def source_files(root, lab):
    """(path in the zip, path on disk) of the minivm source tree, with this lab only."""
    package = os.path.join(root, "minivm")
    entries = []
    for name in ("pyproject.toml", "setup.py", "README.md"):
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            raise MinivmError(f"--export-gradescope needs minivm's source tree "
                             f"({name} not found in {root})")
        entries.append((name, path))
    for folder, folders, names in os.walk(package):
        folders[:] = sorted(f for f in folders if f != "__pycache__")
        for name in sorted(names):
            if name.endswith((".py", ".pyx")):
                path = os.path.join(folder, name)
                entries.append((os.path.relpath(path, root), path))
    firmware = os.path.join(root, "firmware")
    for name in sorted(os.listdir(firmware)):
        if name.endswith(".elf"):
            entries.append((f"firmware/{name}", os.path.join(firmware, name)))
    labs = os.path.join(root, "labs")
    if os.path.isfile(os.path.join(labs, "__init__.py")):
        entries.append(("labs/__init__.py", os.path.join(labs, "__init__.py")))
    for folder, folders, names in os.walk(lab.path):
        folders[:] = sorted(f for f in folders if f not in ("__pycache__", "build"))
        for name in sorted(names):
            if name.endswith((".pyc",)) or name.startswith("."):
                continue
            path = os.path.join(folder, name)
            entries.append((f"labs/{lab.name}/{os.path.relpath(path, lab.path)}", path))
    return entries


def export_gradescope(lab_dir, target):
    """Write Gradescope's autograder zip: setup.sh, run_autograder, minivm-src/."""
    import zipfile
    lab = Lab(lab_dir)
    entries = source_files(source_root(), lab)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise MinivmError(f"{target}: no such folder {folder}")
    stamp = (2024, 1, 1, 0, 0, 0)

    def add(archive, name, data, mode):
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, data)

    temporary = f"{target}.tmp{os.getpid()}"
    with zipfile.ZipFile(temporary, "w") as archive:
        add(archive, "setup.sh", SETUP_SH.replace("{lab}", lab.name), 0o755)
        add(archive, "run_autograder", RUN_AUTOGRADER.format(lab=lab.name), 0o755)
        for name, path in entries:
            with open(path, "rb") as stream:
                add(archive, f"minivm-src/{name}", stream.read(), 0o644)
    os.replace(temporary, target)
    return len(entries) + 2
