"""`minivm lab handout` and `minivm lab list`: the student's copy of a lab.

A handout made from the instructor's lab holds exactly the lab minus
solution/ and hidden/, byte for byte, and `minivm grade HANDOUT` grades the
reference solution on the visible tests only, all passed, and the starter
lower.  Bad input is one line and exit status 2, and writes nothing.
"""
import json
import zipfile

import pytest

from conftest import ROOT, minivm

LABS = ROOT / "labs"
LAB_NAMES = sorted(path.parent.name for path in LABS.glob("*/lab.json"))


def student_files(lab):
    """{path inside the lab: bytes} of what a student may see."""
    folder = LABS / lab
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.relative_to(folder).parts[0] not in ("solution", "hidden")
            and "__pycache__" not in path.parts and path.suffix != ".pyc"
            and "build" not in path.relative_to(folder).parts}


def folder_files(folder):
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def grade(lab_folder, submission, output):
    result = minivm("grade", lab_folder, "--submission", submission, "--output", output,
                    "--jobs", "2", timeout=600)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(output.read_text())


@pytest.mark.parametrize("lab", LAB_NAMES)
def test_a_handout_grades_itself_on_its_visible_tests(lab, tmp_path):
    handout = tmp_path / "handout"
    result = minivm("lab", "handout", lab, handout)
    assert result.returncode == 0, result.stderr.decode()
    assert folder_files(handout) == student_files(lab)
    visible = json.loads((LABS / lab / "lab.json").read_text())["weights"]
    solution = grade(handout, LABS / lab / "solution", tmp_path / "solution.json")
    assert [test["name"] for test in solution["tests"]] == list(visible)
    assert all(test["visibility"] == "visible" for test in solution["tests"])
    assert solution["score"] == sum(visible.values()), solution["output"]
    starter = grade(handout, LABS / lab / "starter", tmp_path / "starter.json")
    assert starter["score"] < solution["score"]


def test_a_zip_handout_unpacks_into_a_folder_named_after_the_lab(tmp_path):
    lab = "trap-and-emulate"
    target = tmp_path / "handout.zip"
    assert minivm("lab", "handout", LABS / lab, target).returncode == 0
    with zipfile.ZipFile(target) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    assert files == {f"{lab}/{name}": data for name, data in student_files(lab).items()}
    # Made twice, byte for byte the same.
    again = tmp_path / "again.zip"
    assert minivm("lab", "handout", LABS / lab, again).returncode == 0
    assert again.read_bytes() == target.read_bytes()


def test_an_empty_folder_may_receive_the_handout(tmp_path):
    (tmp_path / "empty").mkdir()
    assert minivm("lab", "handout", "emulated-disk", tmp_path / "empty").returncode == 0
    assert folder_files(tmp_path / "empty") == student_files("emulated-disk")


def test_lab_list_names_every_lab_and_its_title():
    result = minivm("lab", "list")
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert [line.split()[0] for line in lines] == LAB_NAMES
    title = json.loads((LABS / "trap-and-emulate" / "lab.json").read_text())["title"]
    assert any(line.startswith("trap-and-emulate") and line.endswith(title) for line in lines)


@pytest.mark.parametrize("where, words", [
    ("unknown", "unknown lab 'no-such-lab' (labs: "),
    ("not-empty", "already exists"),
    ("a-file", "already exists"),
    ("inside", "inside the lab folder"),
    ("inside-zip", "inside the lab folder"),
    ("not-a-lab", "not a lab folder"),
])
def test_bad_input_is_one_line_and_status_2(where, words, tmp_path):
    lab, out = str(LABS / "trap-and-emulate"), tmp_path / "out"
    if where == "unknown":
        lab = "no-such-lab"
    elif where == "not-empty":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif where == "a-file":
        out.write_text("mine")
    elif where == "inside":
        out = LABS / "trap-and-emulate" / "starter" / "handout"
    elif where == "inside-zip":
        out = LABS / "trap-and-emulate" / "handout.zip"
    elif where == "not-a-lab":
        lab = str(LABS / "trap-and-emulate" / "starter")
    before = sorted(tmp_path.rglob("*")), sorted((LABS / "trap-and-emulate").rglob("*"))
    result = minivm("lab", "handout", lab, out)
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1 and stderr.startswith("minivm: ") and words in stderr
    assert (sorted(tmp_path.rglob("*")), sorted((LABS / "trap-and-emulate").rglob("*"))) \
        == before
