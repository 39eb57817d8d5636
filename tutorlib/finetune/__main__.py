"""``python -m tutorlib.finetune finetune|predict …``: the same as ``tutorlib finetune|predict …``."""

import sys

from tutorlib.finetune.cli import main

if __name__ == "__main__":
    sys.exit(main())
