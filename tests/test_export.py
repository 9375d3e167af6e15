"""The exported autograders, run for real in the layout their platform gives them.

Both exports are made by a minivm that came from a plain `pip install` of the
wheel (conftest's `installed_minivm`), in a folder with no checkout, as an
instructor without the repository would.  The Gradescope zip is unpacked into
a temporary /autograder (source/, run_autograder beside it, submission/); its
setup.sh installs minivm from the zip's wheel into a venv there (pip may not
reach PyPI: PIP_NO_INDEX; the dependencies come from this Python's own
packages) and its run_autograder grades the reference solution (full marks)
and the starter (less).  The PrairieLearn question's tests/ becomes a
temporary /grade/tests, with the student's files in /grade/student, and its
run.sh runs in the image that setup.sh made, the Dockerfile's one step.
"""
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT
from minivm.grading.export import HIDDEN_OUTPUT, minivm_wheel, prairielearn_results

LAB = "trap-and-emulate"
LAB_DIR = ROOT / "labs" / LAB
VISIBLE = json.loads((LAB_DIR / "lab.json").read_text())["weights"]
HIDDEN = json.loads((LAB_DIR / "hidden" / "weights.json").read_text())["weights"]
FULL_MARKS = sum(VISIBLE.values()) + sum(HIDDEN.values())

pytestmark = pytest.mark.skipif(
    not (shutil.which("bwrap") and shutil.which("cc")),
    reason="setup.sh would apt-get install bubblewrap or a C compiler "
           "(Debian packages bubblewrap, build-essential)")


def run(command, cwd, env, timeout=600):
    return subprocess.run([str(part) for part in command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def plain_environment(path_first=None, **extra):
    """A small environment: this Python's folder (or `path_first`) on PATH, no
    PYTHONPATH, no virtualenv of the developer's."""
    folders = [str(path_first or os.path.dirname(sys.executable)), "/usr/bin", "/bin"]
    return {"PATH": os.pathsep.join(folders), "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8", "MINIVM_CACHE_DIR": "off", **extra}


def export(installed_minivm, flag, out, cwd):
    """`minivm grade LAB --export-... OUT` by the pip-installed minivm."""
    env = plain_environment(PYTHONPATH=str(installed_minivm))
    result = run([sys.executable, "-m", "minivm", "grade", LAB_DIR, flag, out], cwd, env)
    assert result.returncode == 0, result.stderr
    return result


def unzip_keeping_modes(archive_path, destination):
    """Unpack as unzip does: the files' modes come along."""
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            path = archive.extract(info, destination)
            os.chmod(path, (info.external_attr >> 16) & 0o777)
        return archive.namelist()


def lab_files(leave_out):
    return {str(path.relative_to(LAB_DIR)): path.read_bytes()
            for path in sorted(LAB_DIR.rglob("*"))
            if path.is_file() and path.relative_to(LAB_DIR).parts[0] not in leave_out
            and "__pycache__" not in path.parts and "build" not in path.parts}


def expected_jobs():
    """What run_autograder should choose: the CPUs this process may use,
    capped by a cgroup CPU quota."""
    cpus = len(os.sched_getaffinity(0))
    for quota_file, period_file in (("/sys/fs/cgroup/cpu.max", None),
                                    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                                     "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            fields = open(quota_file).read().split()
            period = fields[1] if period_file is None else open(period_file).read().strip()
        except (OSError, IndexError):
            continue
        if fields[0] != "max" and int(fields[0]) > 0:
            cpus = min(cpus, -(-int(fields[0]) // int(period)))
        break
    return cpus


@pytest.fixture(scope="module")
def gradescope(installed_minivm, tmp_path_factory):
    """(the zip's names, /autograder) after Gradescope's image build: the zip
    unpacked into source/, run_autograder copied beside it, setup.sh run."""
    work = tmp_path_factory.mktemp("instructor")
    export(installed_minivm, "--export-gradescope", work / "autograder.zip", work)
    home = tmp_path_factory.mktemp("autograder")
    names = unzip_keeping_modes(work / "autograder.zip", home / "source")
    shutil.copy2(home / "source" / "run_autograder", home / "run_autograder")
    result = run(["bash", home / "source" / "setup.sh"], home / "source",
                 plain_environment(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    # setup.sh ends with `minivm info`; with Cython at hand it built the fast path.
    assert "virtqueue and instruction clock:" in result.stdout
    if importlib.util.find_spec("Cython"):
        assert "Cython fast path" in result.stdout, result.stderr
    return names, home


def run_autograder(home, submission):
    if (home / "submission").exists():
        shutil.rmtree(home / "submission")
    shutil.copytree(submission, home / "submission")
    result = run(["bash", home / "run_autograder"], home, plain_environment())
    assert result.returncode == 0, result.stderr
    return result, json.loads((home / "results" / "results.json").read_text())


def test_the_gradescope_zip_holds_the_lab_without_its_solution(gradescope):
    names, home = gradescope
    source = home / "source"
    for script in ("setup.sh", "run_autograder"):
        assert os.access(source / script, os.X_OK)
        assert (source / script).read_text().startswith("#!/usr/bin/env bash\n")
    wheels = [name for name in names if name.endswith(".whl")]
    assert wheels == ["minivm-0.1.0-py3-none-any.whl"]
    shipped = {name[len(LAB) + 1:]: (source / name).read_bytes()
               for name in names if name.startswith(f"{LAB}/")}
    assert shipped == lab_files(("solution",))
    assert "hidden/weights.json" in shipped
    assert sorted(set(names) - {f"{LAB}/{name}" for name in shipped}) \
        == sorted(["setup.sh", "run_autograder"] + wheels)
    with zipfile.ZipFile(source / wheels[0]) as wheel:
        assert not [name for name in wheel.namelist() if "/labs/" in name]


def test_run_autograder_gives_the_solution_full_marks_and_the_starter_less(gradescope):
    _, home = gradescope
    result, results = run_autograder(home, LAB_DIR / "solution")
    assert f"with {expected_jobs()} tests at a time" in result.stdout
    assert results["score"] == FULL_MARKS, results["output"]
    assert {test["name"]: test["max_score"] for test in results["tests"]} \
        == {**VISIBLE, **HIDDEN}
    assert {test["name"] for test in results["tests"]
            if test["visibility"] == "after_published"} == set(HIDDEN)
    assert all(test["score"] == test["max_score"] for test in results["tests"])
    _, results = run_autograder(home, LAB_DIR / "starter")
    assert 0 <= results["score"] < FULL_MARKS
    assert abs(sum(test["score"] for test in results["tests"]) - results["score"]) < 1e-6


def test_run_autograder_without_a_working_minivm_still_writes_results(gradescope):
    _, home = gradescope
    command = home / "venv" / "bin" / "minivm"
    command.rename(command.with_name("minivm.away"))
    try:
        _, results = run_autograder(home, LAB_DIR / "solution")
    finally:
        command.with_name("minivm.away").rename(command)
    assert results["score"] == 0 and "could not grade" in results["output"]


# -- PrairieLearn -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prairielearn(installed_minivm, tmp_path_factory):
    work = tmp_path_factory.mktemp("instructor")
    export(installed_minivm, "--export-prairielearn", work / "pl", work)
    return work / "pl"


def grade_on_prairielearn(export_dir, image_venv, student_files, tmp_path):
    """Lay out /grade as PrairieLearn does and run the question's entrypoint in
    the image (the venv setup.sh made is the image's /opt/minivm/venv)."""
    grade = tmp_path / "grade"
    shutil.copytree(export_dir / "questions" / LAB / "tests", grade / "tests")
    (grade / "student").mkdir()
    for path in student_files:
        shutil.copy(path, grade / "student")
    info = json.loads((export_dir / "questions" / LAB / "info.json").read_text())
    entrypoint = info["externalGradingOptions"]["entrypoint"]
    assert entrypoint.startswith("/grade/")
    script = grade / entrypoint[len("/grade/"):]
    os.chmod(script, 0o755)             # PrairieLearn makes the entrypoint executable
    result = run([script], grade, plain_environment(path_first=image_venv / "bin"))
    assert result.returncode == 0, result.stderr
    return json.loads((grade / "results" / "results.json").read_text())


def check_prairielearn(results):
    """PrairieLearn's results.json: score in 0..1, tests with points and output."""
    assert results["gradable"] is True and 0 <= results["score"] <= 1
    assert isinstance(results["message"], str) and isinstance(results["output"], str)
    for test in results["tests"]:
        assert set(test) == {"name", "points", "max_points", "output"}
        assert 0 <= test["points"] <= test["max_points"]
    total = sum(test["max_points"] for test in results["tests"])
    assert abs(sum(test["points"] for test in results["tests"]) / total
               - results["score"]) < 1e-6


def test_the_prairielearn_export_is_a_question_and_its_image(prairielearn, gradescope):
    _, home = gradescope
    question = prairielearn / "questions" / LAB
    info = json.loads((question / "info.json").read_text())
    options = info["externalGradingOptions"]
    assert info["gradingMethod"] == "External" and options["enabled"] is True
    assert options["entrypoint"] == "/grade/tests/run.sh" and 0 < options["timeout"] <= 600
    assert 'file-names="hashdev.py"' in (question / "question.html").read_text()
    shipped = {str(path.relative_to(question / "tests" / LAB)): path.read_bytes()
               for path in (question / "tests" / LAB).rglob("*") if path.is_file()}
    assert shipped == lab_files(("solution",))
    # The image is built by the same setup.sh Gradescope runs, with the same wheel.
    assert (prairielearn / "setup.sh").read_bytes() == (home / "source" / "setup.sh").read_bytes()
    wheel = "minivm-0.1.0-py3-none-any.whl"
    assert (prairielearn / wheel).read_bytes() == (home / "source" / wheel).read_bytes()
    dockerfile = (prairielearn / "Dockerfile").read_text()
    assert f"COPY setup.sh {wheel} /opt/minivm/\n" in dockerfile
    assert "RUN bash /opt/minivm/setup.sh /opt/minivm/venv" in dockerfile
    assert "ENV PATH=/opt/minivm/venv/bin:$PATH" in dockerfile


def test_prairielearn_grades_the_solution_full_and_the_starter_less(prairielearn, gradescope,
                                                                     tmp_path):
    _, home = gradescope
    results = grade_on_prairielearn(prairielearn, home / "venv", [LAB_DIR / "solution" /
                                                                  "hashdev.py"], tmp_path)
    check_prairielearn(results)
    assert results["score"] == 1.0
    assert {test["name"]: test["max_points"] for test in results["tests"]} \
        == {**VISIBLE, **HIDDEN}
    outputs = {test["name"]: test["output"] for test in results["tests"]}
    assert all("hidden test" in outputs[name] for name in HIDDEN)
    assert all("passed" in outputs[name] for name in VISIBLE)
    results = grade_on_prairielearn(prairielearn, home / "venv", [LAB_DIR / "starter" /
                                                                  "hashdev.py"], tmp_path / "s")
    check_prairielearn(results)
    assert results["score"] < 1


def test_prairielearn_without_minivm_says_not_gradable(prairielearn, tmp_path):
    empty = tmp_path / "no-image"
    (empty / "bin").mkdir(parents=True)
    results = grade_on_prairielearn(prairielearn, empty, [LAB_DIR / "solution" / "hashdev.py"],
                                    tmp_path)
    assert results["gradable"] is False and "could not grade" in results["message"]


def test_a_zip_export_holds_the_same_files(installed_minivm, prairielearn, tmp_path):
    export(installed_minivm, "--export-prairielearn", tmp_path / "pl.zip", tmp_path)
    with zipfile.ZipFile(tmp_path / "pl.zip") as archive:
        names = sorted(archive.namelist())
    assert names == sorted(str(path.relative_to(prairielearn))
                           for path in prairielearn.rglob("*") if path.is_file())


def test_an_export_never_overwrites(installed_minivm, tmp_path):
    (tmp_path / "autograder.zip").write_text("last term's")
    env = plain_environment(PYTHONPATH=str(installed_minivm))
    result = run([sys.executable, "-m", "minivm", "grade", LAB_DIR, "--export-gradescope",
                  "autograder.zip"], tmp_path, env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "already exists" in result.stderr
    assert (tmp_path / "autograder.zip").read_text() == "last term's"


def test_the_running_minivm_repacks_into_the_same_wheel(gradescope):
    """Whether minivm was installed plainly (the zip's wheel) or is this
    process's own (an editable install in a checkout), the wheel holds the same."""
    name, data = minivm_wheel()
    _, home = gradescope
    with zipfile.ZipFile(home / "source" / name) as shipped:
        with zipfile.ZipFile(io.BytesIO(data)) as ours:
            assert sorted(ours.namelist()) == sorted(shipped.namelist())
            assert "minivm/firmware/hello.elf" in ours.namelist()


def test_results_without_tests_are_not_gradable():
    assert prairielearn_results({"score": 0, "output": "", "tests": []})["gradable"] is False
    results = prairielearn_results({"score": 3, "output": "Lab: 3 of 4 points.\nnote", "tests": [
        {"name": "test_a", "score": 3, "max_score": 3, "output": "ok", "visibility": "visible"},
        {"name": "test_b", "score": 0, "max_score": 1, "output": "x",
         "visibility": "after_published"}]})
    assert results["score"] == 0.75 and results["message"] == "Lab: 3 of 4 points."
    assert [test["output"] for test in results["tests"]] == ["ok", HIDDEN_OUTPUT]
