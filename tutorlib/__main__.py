"""``python -m tutorlib`` is the ``tutorlib`` command."""

import sys

from tutorlib.cli import main

sys.exit(main())
