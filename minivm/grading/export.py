"""Autograders for the platforms that grade at scale: Gradescope and PrairieLearn.

A course of thousands grades on the platforms' own container farms: each
submission in a fresh container that runs `minivm grade` once.  Both exports
carry the lab without solution/ (its hidden tests included) and minivm itself
as a wheel repacked from the minivm that exports them, so exporting needs no
source checkout: a plain `pip install minivm` will do.

Gradescope (the autograder zip; Gradescope unpacks it into /autograder/source):

    setup.sh                        run once, as root, when Gradescope builds the image:
                                    Python, bubblewrap, minivm into /autograder/venv
    run_autograder                  copied to /autograder/run_autograder; for each
                                    submission: /autograder/submission graded into
                                    /autograder/results/results.json
    minivm-VERSION-py3-none-any.whl
    LAB/                            the lab without solution/

PrairieLearn (an external grader: a question, and the image it runs in):

    Dockerfile, setup.sh, minivm-VERSION-py3-none-any.whl     the grading image
    questions/LAB/info.json         external grading on, entrypoint /grade/tests/run.sh
    questions/LAB/question.html     a file upload of the lab's files, and the results
    questions/LAB/tests/run.sh      PrairieLearn copies tests/ to /grade/tests; the
                                    student's files are in /grade/student, the results
                                    go to /grade/results/results.json
    questions/LAB/tests/LAB/        the lab without solution/

Both entry scripts find their folders beside themselves, so a test can run
them for real in a temporary folder laid out as the platform lays it out.
"""
import json
import os
import sys

from minivm.errors import MinivmError
from minivm.grading.handout import (check_target, read_entries, write_entries,
                                    write_zip)
from minivm.grading.lab import lab_config

SOLUTION_ONLY = ("solution",)
HIDDEN_WEIGHTS = os.path.join("hidden", "weights.json")

# -- minivm itself, as a wheel ----------------------------------------------------------------

WHEEL_FILE = """Wheel-Version: 1.0
Generator: minivm.grading.export
Root-Is-Purelib: true
Tag: py3-none-any
"""


def minivm_wheel():
    """(file name, bytes) of a pure-Python wheel of the running minivm: its
    modules, the fast path's Cython source (setup.sh compiles it), the built-in
    guests, and the metadata pip installed it with (dependencies, the `minivm`
    command).  The labs stay out: an autograder carries its own."""
    import importlib.metadata
    import io

    import minivm
    from minivm.datafiles import data_folders
    try:
        dist = importlib.metadata.distribution("minivm")
    except importlib.metadata.PackageNotFoundError:
        raise MinivmError("exporting an autograder needs an installed minivm "
                          "(pip install minivm, or pip install -e . in a checkout)")
    files = []
    package = os.path.dirname(os.path.abspath(minivm.__file__))
    for folder, folders, names in os.walk(package):
        folders[:] = sorted(f for f in folders if f not in ("__pycache__", "labs", "firmware"))
        for name in sorted(names):
            if name.endswith((".py", ".pyx")):
                path = os.path.join(folder, name)
                files.append(("minivm/" + os.path.relpath(path, package).replace(os.sep, "/"),
                              _read(path)))
    for folder in data_folders("firmware")[:1]:
        files += [(f"minivm/firmware/{name}", _read(os.path.join(folder, name)))
                  for name in sorted(os.listdir(folder)) if name.endswith(".elf")]
    info = f"minivm-{dist.version}.dist-info"
    files.append((f"{info}/METADATA", dist.read_text("METADATA").encode()))
    if dist.read_text("entry_points.txt"):
        files.append((f"{info}/entry_points.txt", dist.read_text("entry_points.txt").encode()))
    files.append((f"{info}/WHEEL", WHEEL_FILE.encode()))
    files.append((f"{info}/RECORD", _record(files, f"{info}/RECORD")))
    stream = io.BytesIO()
    write_zip([(name, data, 0o644) for name, data in files], stream)
    return f"minivm-{dist.version}-py3-none-any.whl", stream.getvalue()


def _read(path):
    with open(path, "rb") as stream:
        return stream.read()


def _record(files, record_name):
    """The wheel's RECORD: every file's SHA-256 (urlsafe base64, unpadded) and size."""
    import base64
    import hashlib
    lines = []
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}\n")
    lines.append(f"{record_name},,\n")
    return "".join(lines).encode()


# -- the scripts ------------------------------------------------------------------------------

# Gradescope runs setup.sh as root on its Ubuntu image; the PrairieLearn
# Dockerfile runs it with the venv's path.  {wheel} is filled in.
SETUP_SH = r"""#!/usr/bin/env bash
# Installs minivm, what its labs need and the grader's sandbox tool:
#     setup.sh [VENV]     (default: ../venv, i.e. /autograder/venv on Gradescope)
# minivm comes from the wheel beside this script, its dependencies (pytest
# among them: the grader runs the labs' tests with it) from PyPI.  System packages are installed only if missing.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-$(dirname "$HERE")/venv}"
WHEEL="$HERE/{wheel}"

usable() {      # a Python >= 3.10 that can make a venv with pip in it
    command -v "$1" >/dev/null 2>&1 &&
        "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null
}
find_python() {
    for candidate in python3 python3.13 python3.12 python3.11 python3.10; do
        if usable "$candidate"; then echo "$candidate"; return 0; fi
    done
    return 1
}

# Python with venv; a C compiler and Python's headers for the fast path;
# bubblewrap, the grader's sandbox.
PYTHON="$(find_python || true)"
if [ -z "$PYTHON" ] || ! command -v cc >/dev/null || ! command -v bwrap >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends python3 python3-venv python3-pip python3-dev \
        build-essential bubblewrap ca-certificates
    PYTHON="$(find_python || true)"
fi
if [ -z "$PYTHON" ]; then       # an older Ubuntu: Python 3.11 from deadsnakes
    apt-get install -y --no-install-recommends software-properties-common
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update
    apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev
    PYTHON=python3.11
fi

# The venv sees the system's packages, so an image that already has minivm's
# dependencies installs nothing more from PyPI.
"$PYTHON" -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
"$VENV/bin/python" -m pip install --quiet "$WHEEL"

# The Cython fast path, compiled in place; without it minivm runs its
# pure-Python twins (slower, same results).
PACKAGE="$("$VENV/bin/python" -c 'import minivm, os; print(os.path.dirname(minivm.__file__))')"
if "$VENV/bin/python" -m pip install --quiet 'cython>=3.0' &&
   "$VENV/bin/python" -m Cython.Build.Cythonize -i -3 -q "$PACKAGE/_fastpath.pyx" >/dev/null; then
    rm -f "$PACKAGE/_fastpath.c"
else
    echo "setup.sh: the fast path did not build; minivm runs pure Python" >&2
fi

# Fail the image build now, not at the first submission, if minivm is broken.
"$VENV/bin/minivm" info
"""

# The CPUs this container may use: its affinity (nproc), capped by a CPU quota
# (cgroup v2 cpu.max, or v1 cfs_quota_us/cfs_period_us).
CPUS_FUNCTION = r"""cpus() {
    local n quota period
    n="$(nproc 2>/dev/null || echo 1)"
    if read -r quota period 2>/dev/null < /sys/fs/cgroup/cpu.max; then :
    elif read -r quota 2>/dev/null < /sys/fs/cgroup/cpu/cpu.cfs_quota_us &&
         read -r period 2>/dev/null < /sys/fs/cgroup/cpu/cpu.cfs_period_us; then :
    else quota=max; fi
    if [ "$quota" != max ] && [ "$quota" -gt 0 ] 2>/dev/null; then
        quota=$(( (quota + period - 1) / period ))
        if [ "$quota" -lt "$n" ]; then n="$quota"; fi
    fi
    echo "$n"
}"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this, as /autograder/run_autograder, once per submission
# (in a fresh container): it grades /autograder/submission into
# /autograder/results/results.json.  The grader copies the submission into a
# private folder per test by itself.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RESULTS="$ROOT/results/results.json"
{cpus}
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
JOBS="$(cpus)"
echo "run_autograder: grading {lab} with $JOBS tests at a time"
"$ROOT/venv/bin/minivm" grade "$ROOT/source/{lab}" --submission "$ROOT/submission" \
    --output "$RESULTS" --jobs "$JOBS"
status=$?
if [ ! -s "$RESULTS" ]; then
    cat > "$RESULTS" <<EOF
{"score": 0, "output": "The autograder could not grade this submission (minivm grade exited with status $status). Please tell the course staff.", "tests": []}
EOF
fi
"""

RUN_SH = r"""#!/usr/bin/env bash
# PrairieLearn's external grader runs this (info.json's entrypoint) in the
# image the export's Dockerfile built, once per submission: the question's
# tests/ is /grade/tests, the student's files are in /grade/student, and the
# results go to /grade/results/results.json.  minivm grades into Gradescope's
# format; minivm.grading.export converts that to PrairieLearn's.
set -u
TESTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GRADE="$(dirname "$TESTS")"
RESULTS="$GRADE/results/results.json"
{cpus}
mkdir -p "$GRADE/results"
rm -f "$RESULTS"
SCRATCH="$(mktemp -d)"
JOBS="$(cpus)"
echo "run.sh: grading {lab} with $JOBS tests at a time"
minivm grade "$TESTS/{lab}" --submission "$GRADE/student" --output "$SCRATCH/results.json" \
    --jobs "$JOBS"
status=$?
python3 -m minivm.grading.export prairielearn-results "$SCRATCH/results.json" "$RESULTS"
rm -rf "$SCRATCH"
if [ ! -s "$RESULTS" ]; then
    cat > "$RESULTS" <<EOF
{"gradable": false, "message": "The autograder could not grade this submission (minivm grade exited with status $status). Please tell the course staff."}
EOF
fi
"""

DOCKERFILE = """# The image PrairieLearn grades {lab} in: Ubuntu, Python, bubblewrap, minivm.
# Build it and push it where PrairieLearn can pull it, then put its name in
# questions/{lab}/info.json ("image"):
#     docker build -t ACCOUNT/minivm-grader:{version} .
#     docker push ACCOUNT/minivm-grader:{version}
FROM ubuntu:24.04
COPY setup.sh {wheel} /opt/minivm/
RUN bash /opt/minivm/setup.sh /opt/minivm/venv && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/minivm/venv/bin:$PATH
"""

QUESTION_HTML = """<pl-question-panel>
  <p>{title}. Upload your {files}: the lab's README (in the handout, or
  <code>minivm lab handout {lab} OUT</code>) says what to build, and its visible
  tests run on your machine with <code>minivm grade</code>. Grading adds hidden tests.</p>
  <pl-file-upload file-names="{names}"></pl-file-upload>
</pl-question-panel>

<pl-submission-panel>
  <pl-external-grader-results></pl-external-grader-results>
  <pl-file-preview></pl-file-preview>
</pl-submission-panel>
"""


def fill(template, **values):
    """The template with each {name} replaced (the scripts' own ${...} stay)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


# -- the exports ------------------------------------------------------------------------------


def _lab(lab_dir):
    """(name, lab.json) of the lab folder, or a one-line error."""
    return os.path.basename(os.path.abspath(lab_dir)), lab_config(lab_dir)


def _setup_entries(wheel_name, wheel):
    return [("setup.sh", fill(SETUP_SH, wheel=wheel_name).encode(), 0o755),
            (wheel_name, wheel, 0o644)]


def export_gradescope(lab_dir, out_zip):
    """Write Gradescope's autograder zip for the lab in `lab_dir`."""
    name, _ = _lab(lab_dir)
    check_target(out_zip, lab_dir)
    wheel_name, wheel = minivm_wheel()
    script = fill(RUN_AUTOGRADER, lab=name, cpus=CPUS_FUNCTION)
    entries = _setup_entries(wheel_name, wheel)
    entries.append(("run_autograder", script.encode(), 0o755))
    entries += read_entries(lab_dir, SOLUTION_ONLY, prefix=f"{name}/")
    write_entries(entries, out_zip, as_zip=True)
    return len(entries)


def export_prairielearn(lab_dir, out):
    """Write a PrairieLearn external-grader question and its image for the
    lab in `lab_dir`: a folder, or a zip when `out` ends in .zip."""
    import html
    import uuid
    name, config = _lab(lab_dir)
    check_target(out, lab_dir)
    wheel_name, wheel = minivm_wheel()
    version = wheel_name.split("-")[1]
    question = f"questions/{name}/"
    files = [str(f) for f in config.get("files", [])]
    info = {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"minivm-lab:{name}")),
        "title": config.get("title", name), "topic": "minivm labs", "tags": ["minivm"],
        "type": "v3", "singleVariant": True, "gradingMethod": "External",
        "externalGradingOptions": {
            "enabled": True, "image": f"ACCOUNT/minivm-grader:{version}",
            "entrypoint": "/grade/tests/run.sh", "timeout": _grading_timeout(lab_dir, config)}}
    page = fill(QUESTION_HTML, title=html.escape(info["title"]), lab=name,
                files=html.escape(", ".join(files) or "files"), names=html.escape(",".join(files)))
    entries = _setup_entries(wheel_name, wheel)
    entries += [
        ("Dockerfile", fill(DOCKERFILE, lab=name, version=version, wheel=wheel_name).encode(),
         0o644),
        (question + "info.json", (json.dumps(info, indent=2) + "\n").encode(), 0o644),
        (question + "question.html", page.encode(), 0o644),
        (question + "tests/run.sh", fill(RUN_SH, lab=name, cpus=CPUS_FUNCTION).encode(),
         0o755)]
    entries += read_entries(lab_dir, SOLUTION_ONLY, prefix=f"{question}tests/{name}/")
    write_entries(entries, out, as_zip=out.endswith(".zip"))
    return len(entries)


def _grading_timeout(lab_dir, config):
    """PrairieLearn's limit for one grading job: every test at its time limit,
    two at a time, and a minute to start; PrairieLearn allows at most 600 s."""
    tests = len(config.get("weights", {}))
    try:
        with open(os.path.join(lab_dir, HIDDEN_WEIGHTS), encoding="utf-8") as stream:
            tests += len(json.load(stream).get("weights", {}))
    except (OSError, ValueError, AttributeError):
        pass
    per_test = float(config.get("timeout", 20))
    return int(min(600, 60 + per_test * -(-tests // 2)))


# -- Gradescope's results.json to PrairieLearn's ----------------------------------------------

HIDDEN_OUTPUT = "(a hidden test: its output is shown to the course staff only)"


def prairielearn_results(gradescope):
    """PrairieLearn's results (score 0..1, tests with points) from the
    Gradescope results.json `minivm grade` wrote.  Hidden tests keep their
    name and points; their output stays with the staff, as on Gradescope."""
    tests = []
    for test in gradescope.get("tests", []):
        hidden = test.get("visibility", "visible") != "visible"
        tests.append({"name": str(test["name"]), "points": float(test.get("score", 0)),
                      "max_points": float(test["max_score"]),
                      "output": HIDDEN_OUTPUT if hidden else str(test.get("output", ""))})
    max_points = sum(test["max_points"] for test in tests)
    if not tests or max_points <= 0:
        return {"gradable": False, "message": str(gradescope.get("output", "")) or
                "The autograder ran no test. Please tell the course staff."}
    score = sum(test["points"] for test in tests) / max_points
    summary, _, notes = str(gradescope.get("output", "")).partition("\n")
    return {"gradable": True, "score": round(min(1.0, max(0.0, score)), 6),
            "message": summary, "output": notes, "tests": tests}


def convert_results(gradescope_path, prairielearn_path):
    with open(gradescope_path, encoding="utf-8") as stream:
        results = prairielearn_results(json.load(stream))
    temporary = f"{prairielearn_path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(results, stream, indent=2)
        stream.write("\n")
    os.replace(temporary, prairielearn_path)


USAGE = "usage: python -m minivm.grading.export prairielearn-results GRADESCOPE_JSON OUT_JSON"


def main(argv=None):
    """The PrairieLearn entry script's conversion step (see USAGE)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] != "prairielearn-results":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        convert_results(argv[1], argv[2])
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"minivm: cannot convert {argv[1]}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
