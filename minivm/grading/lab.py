"""A lab, as the grader reads it: lab.json, hidden/weights.json, its folders.

    labs/NAME/lab.json             title, files, firmware, limits, weights of the visible tests
    labs/NAME/tests/test_*.py      visible tests (pytest tests)
    labs/NAME/hidden/test_*.py     hidden tests (instructor's tree and autograder export only)
    labs/NAME/hidden/weights.json  {"weights": {test: points}} of the hidden tests

A lab is named (looked up in the installed package's labs, then in a source
tree's labs/) or given as a path to its folder (instructor tree, handout, export).
"""
import json
import math
import os

from minivm.errors import MinivmError

LAB_FILE = "lab.json"
FOLDERS = (("tests", "visible"), ("hidden", "after_published"))
DEFAULTS = {"timeout": 20.0, "max_insns": 50_000_000, "memory_mb": 1024,
            "test_memory_mb": 8192, "processes": 64}


def labs_folders():
    from minivm.datafiles import data_folders
    return data_folders("labs")


def lab_names():
    return sorted({name for folder in labs_folders() for name in os.listdir(folder)
                   if os.path.isfile(os.path.join(folder, name, LAB_FILE))})


def find_lab(name):
    """The folder of lab `name`: a path to a lab folder, or a lab's name (the
    installed package's labs first, then a source tree's labs/)."""
    if os.path.isfile(os.path.join(name, LAB_FILE)):
        return os.path.abspath(name)
    if os.sep not in name:
        for folder in labs_folders():
            if os.path.isfile(os.path.join(folder, name, LAB_FILE)):
                return os.path.join(folder, name)
    if os.path.isdir(name):
        raise MinivmError(f"{name}: not a lab folder (no {LAB_FILE})")
    raise MinivmError(f"unknown lab {name!r} (labs: {', '.join(lab_names()) or 'none installed'})")


def lab_config(lab_dir):
    """The lab's lab.json, or a one-line error."""
    if not os.path.isfile(os.path.join(lab_dir, LAB_FILE)):
        raise MinivmError(f"{lab_dir}: not a lab folder (no {LAB_FILE})")
    return _read_json(os.path.join(lab_dir, LAB_FILE), f"{lab_dir}/{LAB_FILE}")


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError) as error:
        raise MinivmError(f"cannot read {what}: {error}")
    if not isinstance(data, dict):
        raise MinivmError(f"{what} is not a JSON object")
    return data


def _weights(data, what):
    weights = data.get("weights", {})
    if not isinstance(weights, dict):
        raise MinivmError(f"{what}: weights must be an object of test name: points")
    for name, points in weights.items():
        if isinstance(points, bool) or not isinstance(points, (int, float)) \
                or not math.isfinite(points) or points < 0:
            raise MinivmError(f"{what}: the weight of {name} is not a number of points: "
                              f"{points!r}")
    return {name: float(points) for name, points in weights.items()}


class Lab:
    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.name = os.path.basename(self.path.rstrip(os.sep))
        config = _read_json(os.path.join(self.path, LAB_FILE), f"{self.name}/{LAB_FILE}")
        self.title = str(config.get("title", self.name))
        self.files = [str(f) for f in config.get("files", [])]
        self.firmware = list(config.get("firmware", []))
        self.settings = {}
        for key, default in DEFAULTS.items():
            value = config.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise MinivmError(f"{self.name}/{LAB_FILE}: {key} must be a positive number")
            self.settings[key] = value
        self.weights = _weights(config, f"{self.name}/{LAB_FILE}")
        hidden = os.path.join(self.path, "hidden", "weights.json")
        if os.path.isfile(hidden):
            self.weights.update(_weights(_read_json(hidden, f"{self.name}/hidden/weights.json"),
                                         f"{self.name}/hidden/weights.json"))
        self.folders = [os.path.join(self.path, folder) for folder, _ in FOLDERS
                        if os.path.isdir(os.path.join(self.path, folder))]
        self.tests = []             # [{"name", "folder", "doc"}], once collected

    def visibility(self, folder):
        return dict(FOLDERS).get(folder, "visible")

    def set_tests(self, collected):
        """Check the collected tests against the weights (a one-line error)."""
        names = [test["name"] for test in collected]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise MinivmError(f"{self.name}: test names used twice: {', '.join(twice)}")
        unweighted = [name for name in names if name not in self.weights]
        if unweighted:
            raise MinivmError(f"{self.name}: tests with no weight: {', '.join(unweighted)}")
        unknown = sorted(set(self.weights) - set(names))
        if unknown and os.path.isdir(os.path.join(self.path, "hidden")):
            raise MinivmError(f"{self.name}: weights of tests that do not exist: "
                              f"{', '.join(unknown)}")
        self.tests = collected
        self.max_score = sum(self.weights[name] for name in names)
