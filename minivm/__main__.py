import sys

from minivm.cli import main

sys.exit(main())
