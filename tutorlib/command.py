"""What every ``tutorlib`` subcommand shares: one error policy, argument types, quiet libraries.

This module imports neither torch nor transformers, so a usage or file error answers at once.

- :func:`run_guarded`: a command that fails with an expected error (a bad file, a bad option, an
  offline hub id, a missing package) prints one ``error: …`` line and exits with 2; ``TUTORLIB_DEBUG=1``
  shows the traceback instead. Every subcommand (``train``, ``finetune``, ``predict``, ``generate``,
  ``grade``, ``build-exercises``, ``bench``) runs through it.
- :func:`positive_int`, :func:`positive_float`: argparse types that reject 0 and negative values with
  a usage error, instead of letting ``--lr 0`` fall back to a default silently.
- :func:`quiet_libraries`: silence the warnings libraries print on every normal run (torchao's
  "Failed to load …so" for GPU kernels a CPU machine cannot load, torch's ``_pytree`` deprecation
  notices, transformers' loading bars).

>>> import argparse
>>> run_guarded(lambda args: int("x"), argparse.Namespace())   # and "error: invalid literal …" on stderr
2
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["USER_ERRORS", "run_guarded", "positive_int", "positive_float", "quiet_libraries", "existing_file",
           "write_table", "lazy_exports"]

#: Exceptions that mean "the input or the machine is not right", answered with one line, not a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, RuntimeError, ImportError, LookupError)


def run_guarded(fn: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """Run the command ``fn(args)``; an expected error becomes one ``error:`` line on stderr and exit code 2.

    >>> run_guarded(lambda args: 0, argparse.Namespace())
    0
    """
    try:
        return int(fn(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if os.environ.get("TUTORLIB_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1.

    >>> positive_int("3")
    3
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a whole number of at least 1, got 0
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (``--lr 0`` is a usage error, not the default).

    >>> positive_float("3e-4")
    0.0003
    >>> positive_float("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a number greater than 0, got 0.0
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {value}")
    return value


def existing_file(path: str | os.PathLike[str], what: str = "data file") -> Path:
    """``path`` as a Path when it is an existing file; else a ``FileNotFoundError`` that says what to check.

    >>> existing_file("/nonexistent.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: data file /nonexistent.csv does not exist: check the path
    """
    p = Path(path)
    if not p.is_file():
        where = "" if p.is_absolute() else f" (relative to {Path.cwd()})"
        kind = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise FileNotFoundError(f"{what} {p} {kind}: check the path{where}")
    return p


def quiet_libraries() -> None:
    """Silence library warnings that say nothing about the user's run, and transformers' (and the hub's)
    loading bars, without importing anything heavy (call it before the libraries are imported; when
    ``transformers`` is already imported its bars are turned off directly).

    >>> quiet_libraries(); logging.getLogger("torchao").level == logging.ERROR
    True
    """
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read by huggingface_hub, which transformers follows
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def write_table(table: str, out: str | os.PathLike[str] | None, what: str) -> str:
    """Write ``table`` to the file ``out`` (folders created), or to stdout when ``out`` is None; say where.

    >>> write_table("a,b\\n", None, "answers")
    a,b
    'answers above'
    """
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(table, encoding="utf-8")
        return f"{what} written to {out}"
    sys.stdout.write(table)
    return f"{what} above"


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that imports ``package.<module>`` only when one of its names is used.

    ``exports`` maps each public name to the submodule that defines it. Packages whose command-line
    parsers must not import torch (``tutorlib.grading``, ``tutorlib.finetune``) use it.

    >>> getattr_ = lazy_exports("tutorlib", {"run_guarded": "command"})
    >>> getattr_("run_guarded") is run_guarded
    True
    """
    def __getattr__(name: str) -> Any:
        if name in exports:
            import importlib

            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
