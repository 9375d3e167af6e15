import os
import sys

if not sys.flags.safe_path:
    # `python -m` put the working folder first on sys.path: from inside a
    # submission, its modules would shadow the standard library in the grader.
    os.execv(sys.executable, [sys.executable, "-P", *sys.orig_argv[1:]])

from minivm.grading.cli import main  # noqa: E402  (only once the path is safe)

sys.exit(main())
