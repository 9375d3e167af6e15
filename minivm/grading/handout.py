"""Two audiences, two packages of material: what students get of a lab.

The instructor's lab folder (labs/NAME/ in the repository) holds everything:

    README.md  lab.json  starter/  tests/  firmware/     what a student may see
    solution/  hidden/                                  the instructor's only

lab.json weighs the visible tests only; hidden/weights.json weighs the hidden
ones, so a lab.json never names a hidden test.  A handout is the lab folder
without solution/ and hidden/, and it grades itself on its visible tests.
The installed package carries the same material (pyproject.toml's
package-data), and an exported autograder the lab without solution/.

    minivm lab list
    minivm lab handout LAB OUT        OUT: a new folder, or a .zip
"""
import os

from minivm.errors import MinivmError
from minivm.grading.lab import find_lab, lab_config, lab_names

INSTRUCTOR_ONLY = ("solution", "hidden")
# What running or building a lab leaves in its folder: never part of it.
LEFTOVERS = {"__pycache__", ".pytest_cache", ".minivm-cache", "build", ".DS_Store"}
ZIP_DATE = (2024, 1, 1, 0, 0, 0)        # every zip the same, byte for byte


# -- a lab's files ----------------------------------------------------------------------------


def lab_files(lab_dir, leave_out):
    """[(path inside the lab, '/'-separated; path on disk)] of the lab's files,
    without the top-level folders in `leave_out` and without leftovers."""
    entries = []
    for folder, folders, names in os.walk(lab_dir):
        inside = os.path.relpath(folder, lab_dir)
        folders[:] = sorted(name for name in folders if name not in LEFTOVERS
                            and not (inside == "." and name in leave_out)
                            and not os.path.islink(os.path.join(folder, name)))
        for name in sorted(names):
            path = os.path.join(folder, name)
            if name in LEFTOVERS or name.endswith(".pyc") or not os.path.isfile(path) \
                    or os.path.islink(path):
                continue
            entries.append((os.path.relpath(path, lab_dir).replace(os.sep, "/"), path))
    return entries


def read_entries(lab_dir, leave_out, prefix=""):
    """[(name, bytes, mode)] of the lab's files, each name under `prefix`."""
    entries = []
    for name, path in lab_files(lab_dir, leave_out):
        with open(path, "rb") as stream:
            data = stream.read()
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        entries.append((prefix + name, data, mode))
    return entries


# -- writing a folder or a zip ----------------------------------------------------------------


def check_target(out, lab_dir):
    """Refuse an OUT that would overwrite something or land inside the lab."""
    if os.path.lexists(out) and not (os.path.isdir(out) and not os.listdir(out)):
        raise MinivmError(f"{out}: already exists (give a new folder or zip, or an empty folder)")
    lab, target = os.path.realpath(lab_dir), os.path.realpath(out)
    if os.path.commonpath([lab, target]) == lab:
        raise MinivmError(f"{out}: inside the lab folder {lab_dir}; write it elsewhere")


def write_entries(entries, out, as_zip):
    """Write [(name, bytes, mode)] as the folder `out`, or as the zip `out`;
    atomically: a failure leaves nothing behind."""
    import shutil
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    temporary = os.path.join(parent, f".{os.path.basename(out)}.tmp{os.getpid()}")
    try:
        if as_zip:
            write_zip(entries, temporary)
        else:
            _write_folder(entries, temporary)
        if os.path.isdir(out):
            os.rmdir(out)           # the empty folder check_target allowed
        os.replace(temporary, out)
    except OSError as error:
        raise MinivmError(f"{out}: {error.strerror or error}")
    finally:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary)
        elif os.path.exists(temporary):
            os.remove(temporary)


def write_zip(entries, target):
    """[(name, bytes, mode)] as a zip, to a path or a binary stream; the same
    entries give the same bytes."""
    import zipfile
    with zipfile.ZipFile(target, "w") as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = (0o100000 | mode) << 16      # a regular file, and its mode
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)


def _write_folder(entries, path):
    for name, data, mode in entries:
        target = os.path.join(path, *name.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as stream:
            stream.write(data)
        os.chmod(target, mode)


# -- the handout ------------------------------------------------------------------------------


def write_handout(lab_dir, out):
    """Write the student handout of the lab in `lab_dir`: a folder, or a zip
    when `out` ends in .zip (its files inside a folder named after the lab)."""
    lab_config(lab_dir)
    check_target(out, lab_dir)
    as_zip = out.endswith(".zip")
    name = os.path.basename(os.path.abspath(lab_dir))
    entries = read_entries(lab_dir, INSTRUCTOR_ONLY, prefix=f"{name}/" if as_zip else "")
    write_entries(entries, out, as_zip)
    return len(entries)


# -- the command line: minivm lab ... ---------------------------------------------------------


def add_arguments(parser):
    """Fill the `minivm lab` subparser."""
    commands = parser.add_subparsers(dest="lab_command", required=True)
    commands.add_parser("list", help="list the labs minivm knows by name")
    handout = commands.add_parser(
        "handout", help="write a lab's student handout (the lab without solution/ and hidden/)")
    handout.add_argument("lab", help="the lab's name, or a path to a lab folder")
    handout.add_argument("out", help="a new (or empty) folder, or a file ending in .zip")


def run(args):
    """`minivm lab ...`; returns the exit status (MinivmError is the caller's)."""
    if args.lab_command == "list":
        for name in lab_names():
            print(f"{name:<24} {lab_config(find_lab(name)).get('title', '')}")
        return 0
    lab_dir = find_lab(args.lab)
    count = write_handout(lab_dir, args.out)
    print(f"wrote {args.out}: {count} files of {os.path.basename(lab_dir)} "
          f"(without {' and '.join(f + '/' for f in INSTRUCTOR_ONLY)})")
    return 0
