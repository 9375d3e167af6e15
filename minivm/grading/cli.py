"""`minivm grade` (also `python -m minivm.grading`): its options and its run.

    minivm grade LAB --submission DIR [--output results.json|-] [--jobs N]
    minivm grade LAB --batch DIR [--jobs N] [--csv scores.csv] [--output-dir DIR]
    minivm grade LAB --export-gradescope autograder.zip | --export-prairielearn OUT
    minivm grade --list

Exit status: 0 when grading worked (whatever the scores), 2 for bad input
(one line on stderr).
"""
import argparse
import math
import os
import sys

from minivm.errors import MinivmError

MAX_TIMEOUT = 3600.0


def add_arguments(parser):
    parser.add_argument("lab", nargs="?",
                        help="the lab's name (minivm grade --list), or a path to a lab folder")
    parser.add_argument("--submission", metavar="DIR", help="grade the submission in DIR")
    parser.add_argument("--output", metavar="FILE",
                        help="where results.json goes (default: ./results.json; - is stdout)")
    parser.add_argument("--batch", metavar="DIR",
                        help="grade every subfolder of DIR (one submission each)")
    parser.add_argument("--jobs", "-j", type=_positive_int, metavar="N",
                        help="judges run at a time (default: the CPUs this process may use)")
    parser.add_argument("--csv", metavar="FILE", help="with --batch: scores as CSV")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="with --batch: write NAME/results.json here instead of into "
                             "each submission's folder")
    parser.add_argument("--export-gradescope", metavar="ZIP",
                        help="write Gradescope's autograder zip for LAB")
    parser.add_argument("--export-prairielearn", metavar="OUT",
                        help="write a PrairieLearn external grader for LAB (folder or .zip)")
    parser.add_argument("--timeout", type=_timeout, metavar="SECONDS",
                        help="wall-clock limit per test (default: the lab's)")
    parser.add_argument("--list", action="store_true", help="list the labs and exit")
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _timeout(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most "
                                         f"{MAX_TIMEOUT:g} seconds: {text!r}")
    return value


def run(args):
    """`minivm grade`; returns the exit status."""
    try:
        return _run(args)
    except MinivmError as error:
        print(f"minivm: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:         # `minivm grade ... | head`: the results are written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("minivm: interrupted", file=sys.stderr)
        return 130


def _run(args):
    from minivm.grading import lab as labs
    from minivm.grading import outputs
    if args.list:
        print("\n".join(labs.lab_names()))
        return 0
    if not args.lab:
        raise MinivmError("grade: which lab? (minivm grade --list shows them)")
    lab = labs.Lab(labs.find_lab(args.lab))
    modes = [m for m in (args.submission, args.batch, args.export_gradescope,
                         args.export_prairielearn) if m]
    if len(modes) != 1:
        raise MinivmError("grade: give exactly one of --submission DIR, --batch DIR, "
                          "--export-gradescope ZIP, --export-prairielearn OUT")
    if args.export_gradescope:
        from minivm.grading.export import export_gradescope
        export_gradescope(lab.path, args.export_gradescope)
        print(f"wrote {args.export_gradescope}")
        return 0
    if args.export_prairielearn:
        from minivm.grading.export import export_prairielearn
        export_prairielearn(lab.path, args.export_prairielearn)
        print(f"wrote {args.export_prairielearn}")
        return 0
    folder = args.submission or args.batch
    if not os.path.isdir(folder):
        raise MinivmError(f"{folder}: no such {'submission folder' if args.submission else 'folder of submissions'}")
    if args.batch and args.output:
        raise MinivmError("grade: --output is for one submission; use --output-dir with --batch")
    output = args.output or "results.json"
    if args.submission:
        outputs.check(output)
    for option, path in (("--csv", args.csv),):
        if path:
            outputs.check(path, option)
    return _grade(lab, args, output)


def _grade(lab, args, output):
    from minivm.grading import batch, outputs
    from minivm.grading.grader import Grader, available_cpus
    secrets = [os.path.abspath(p) for p in (args.submission, args.batch, args.output_dir,
                                            output if args.submission else None) if p]
    grader = Grader(lab, args.jobs or available_cpus(), args.timeout, secrets)
    try:
        if grader.missing:
            print(f"minivm: grading without {'; '.join(grader.missing)}", file=sys.stderr)
        if args.batch:
            grader.collect()
            text, _ = batch.grade_batch(grader, os.path.abspath(args.batch), args.output_dir,
                                        args.csv)
            print(text)
            return 0
        results = grader.grade(os.path.abspath(args.submission))
        outputs.write(output, outputs.dumps(results))
        report = sys.stderr if output == "-" else sys.stdout
        print(results["output"].splitlines()[0], file=report)
        for test in results["tests"]:
            mark = "ok  " if test["status"] == "passed" else "FAIL"
            print(f"  {mark} {test['name']:<40} {test['score']:g}/{test['max_score']:g}",
                  file=report)
        if output != "-":
            print(f"results: {output}", file=report)
        return 0
    finally:
        grader.close()


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line, not argparse's usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def main(argv=None):
    parser = OneLineParser(prog="minivm grade",
                           description="Grade lab submissions (Gradescope results).")
    add_arguments(parser)
    return run(parser.parse_args(argv))
