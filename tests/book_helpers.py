"""The course book built once per test process (tests/test_book.py and tests/ui/test_book_in_browser.py).

The book is the whole course (``python -m book.build``) plus one extra page, ``tests/fixtures/book_page.ipynb``,
executed here first so that the page holds what a stored lesson holds: maths, a matplotlib figure and a
widget whose output area drew a figure (the lessons in the repository may not be stored executed yet).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "book_page.ipynb"
_BUILT: dict = {}


def repository_snapshot() -> dict[str, bytes]:
    """The bytes of every file in notebooks/, exercises/ and solutions/ (to show the build changes none)."""
    return {str(p.relative_to(ROOT)): p.read_bytes()
            for folder in ("notebooks", "exercises", "solutions") for p in sorted((ROOT / folder).rglob("*"))
            if p.is_file()}


def require_book_packages() -> None:
    """Skip (or, on CI, fail) when the book's packages are not installed."""
    missing = [m for m in ("sphinx", "myst_nb", "sphinx_book_theme") if importlib.util.find_spec(m) is None]
    if missing:
        msg = (f"the book's packages are not installed ({', '.join(missing)}): "
               "`bash run.sh book` installs them (pip install -e '.[book]')")
        if os.environ.get("CI"):
            pytest.fail(msg + " -- CI must run the book tests (.ci/run runs `run.sh book` first)")
        pytest.skip(msg)


def execute_fixture(dest: Path) -> Path:
    """Run the fixture notebook in a fresh kernel and write it, outputs and widget state, to ``dest``."""
    import nbclient
    import nbformat

    nb = nbformat.read(FIXTURE, as_version=4)
    env_backend = os.environ.pop("MPLBACKEND", None)  # the kernel must use the inline backend, not Agg
    try:
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(dest.parent)}}).execute()
    finally:
        if env_backend is not None:
            os.environ["MPLBACKEND"] = env_backend
    nbformat.write(nb, dest)
    return dest


def built_book(tmp_path_factory) -> Path:
    """The built book's html folder (built on first use in this process); ``_BUILT["before"]`` keeps the
    repository's notebooks as they were before the build."""
    if "html" not in _BUILT:
        require_book_packages()
        sys.path.insert(0, str(ROOT))
        from book.build import build

        _BUILT["before"] = repository_snapshot()
        root = tmp_path_factory.mktemp("book")
        page = execute_fixture(root / FIXTURE.name)
        index = build(root / "out", extra=[page])
        _BUILT["html"] = index.parent
    return _BUILT["html"]
