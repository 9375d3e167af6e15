"""What `pip install` gives a student: the labs' student material, and no answer.

The sdist and the wheel are built for real from this tree (conftest's
`distributions`); their file lists and contents are read back.  No file of a
lab's solution/ or hidden/ may be in them, nor a copy of one under another
name, nor the name of a hidden test anywhere; every lab's README, lab.json,
starter/, visible tests/ and firmware must be.
"""
import ast
import json
import subprocess
import sys
import tarfile
import zipfile

import pytest

from conftest import ROOT

LABS = ROOT / "labs"
LAB_NAMES = sorted(path.parent.name for path in LABS.glob("*/lab.json"))
INSTRUCTOR_ONLY = ("solution", "hidden")


def members(archive_path):
    """{name inside the package's folders: bytes} of a wheel or an sdist."""
    if archive_path.suffix == ".whl":
        with zipfile.ZipFile(archive_path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    with tarfile.open(archive_path) as archive:
        return {member.name.split("/", 1)[1]: archive.extractfile(member).read()
                for member in archive.getmembers() if member.isfile()}


def lab_prefix(kind):
    return "minivm/labs" if kind == "wheel" else "labs"


def hidden_test_names():
    names = set()
    for path in LABS.glob("*/hidden/test_*.py"):
        tree = ast.parse(path.read_text())
        names |= {node.name for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    return names


def instructor_files():
    return [path for lab in LAB_NAMES for folder in INSTRUCTOR_ONLY
            for path in (LABS / lab / folder).rglob("*") if path.is_file()]


def test_the_instructor_tree_has_answers_to_leave_out():
    """Otherwise the tests below could not fail."""
    assert len(hidden_test_names()) > 20
    assert {path.parent.parent.name for path in instructor_files()} == set(LAB_NAMES)


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_no_solution_or_hidden_test_is_shipped(distributions, kind):
    files = members(distributions[kind])
    assert not [name for name in files
                if set(name.split("/")) & set(INSTRUCTOR_ONLY) and "/labs/" in f"/{name}"]
    answers = {path.read_bytes(): path for path in instructor_files()}
    copies = [f"{name} is {answers[data].relative_to(ROOT)}" for name, data in files.items()
              if data in answers]
    assert not copies
    hidden = hidden_test_names()
    named = [(name, test) for name, data in files.items() for test in hidden
             if test.encode() in data]
    assert not named, f"hidden test names shipped: {named[:5]}"


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_the_student_material_is_shipped(distributions, kind):
    files = members(distributions[kind])
    prefix = lab_prefix(kind)
    for lab in LAB_NAMES:
        folder = LABS / lab
        expected = [folder / "README.md", folder / "lab.json"]
        expected += [p for p in (folder / "starter").iterdir() if p.is_file()]
        expected += list((folder / "tests").glob("*.py"))
        expected += [p for p in (folder / "firmware").glob("*")
                     if p.suffix in (".elf", ".c") or p.name == "Makefile"]
        for path in expected:
            name = f"{prefix}/{path.relative_to(LABS)}"
            assert files.get(name) == path.read_bytes(), f"{name} missing or different"
        # The shipped lab.json weighs exactly the visible tests.
        weights = json.loads(files[f"{prefix}/{lab}/lab.json"])["weights"]
        visible = set()
        for path in (folder / "tests").glob("test_*.py"):
            visible |= {node.name for node in ast.parse(path.read_text()).body
                        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
        assert set(weights) == visible, lab
    assert f"{prefix}/trap-and-emulate/firmware/hashdev.elf" in files


def test_the_wheel_carries_the_guests_and_the_fast_path_source(distributions):
    files = members(distributions["wheel"])
    assert "minivm/firmware/pio_disk.elf" in files and "minivm/_fastpath.pyx" in files
    assert not any(name.endswith(".marshal") or "/.minivm-cache/" in name for name in files)


def test_no_build_cache_is_committed():
    tracked = subprocess.run(["git", "ls-files", "labs"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked and not [name for name in tracked if ".minivm-cache" in name]


def test_an_installed_minivm_grades_only_the_visible_tests(installed_minivm, tmp_path):
    """A student's `minivm grade LAB` from a plain install knows no hidden test."""
    lab = installed_minivm / "minivm" / "labs" / "trap-and-emulate"
    assert not (lab / "hidden").exists() and not (lab / "solution").exists()
    output = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "minivm", "grade", "trap-and-emulate", "--submission",
         LABS / "trap-and-emulate" / "solution", "--output", output, "--jobs", "2"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(installed_minivm),
             "MINIVM_CACHE_DIR": "off"})
    assert result.returncode == 0, result.stderr
    results = json.loads(output.read_text())
    visible = json.loads((LABS / "trap-and-emulate" / "lab.json").read_text())["weights"]
    assert [test["name"] for test in results["tests"]] == list(visible)
    assert results["score"] == sum(visible.values())
