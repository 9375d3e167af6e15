import sys

from minivm.grading.cli import main

sys.exit(main())
