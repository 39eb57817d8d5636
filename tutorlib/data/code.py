"""A code corpus for pretraining the tiny GPT: the Python standard library's own source on this machine.

>>> from tutorlib.data import code_corpus
>>> text = code_corpus(max_chars=10_000); len(text) <= 10_000 and "def " in text
True
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

__all__ = ["code_corpus", "stdlib_files"]

# Modules chosen for readable, ordinary Python (not generated tables or test data).
_PREFERRED = (
    "textwrap.py", "string.py", "heapq.py", "bisect.py", "fractions.py", "functools.py",
    "dataclasses.py", "argparse.py", "shlex.py", "statistics.py", "pprint.py", "random.py",
    "enum.py", "csv.py", "glob.py", "fnmatch.py", "queue.py", "sched.py", "calendar.py",
    "json/encoder.py", "json/decoder.py", "collections/__init__.py", "difflib.py", "ast.py",
)


def stdlib_files() -> list[Path]:
    """The standard-library ``.py`` files the corpus reads, preferred modules first, then the rest sorted.

    >>> stdlib_files()[0].suffix
    '.py'
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise FileNotFoundError(f"the Python standard library was not found at {root}")
    preferred = [root / p for p in _PREFERRED if (root / p).is_file()]
    rest = sorted(
        p for p in root.glob("*.py") if p not in preferred and not p.name.startswith("_")
    )
    return preferred + rest


def code_corpus(max_chars: int = 2_000_000) -> str:
    """Concatenate standard-library source until ``max_chars`` characters (deterministic for a Python version).

    >>> len(code_corpus(5000))
    5000
    """
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    parts: list[str] = []
    total = 0
    for path in stdlib_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        text = "".join(ch if ord(ch) < 128 else "?" for ch in text)  # keep a byte-level vocab small
        parts.append(f"# file: {path.name}\n{text}\n")
        total += len(parts[-1])
        if total >= max_chars:
            break
    return "".join(parts)[:max_chars]
