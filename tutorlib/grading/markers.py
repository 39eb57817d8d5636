"""Find and strip solution regions in the code of a solution notebook.

A solution region is either a block::

    # BEGIN SOLUTION
    ...answer code...
    # END SOLUTION

or a single line that ends with ``# SOLUTION``. :func:`strip_solutions` replaces each region by a
stub that raises ``NotImplementedError`` at the region's indentation, so a stub inside a function
body stays valid Python. Unclosed, nested or stray markers raise :class:`MarkerError`, which names
the notebook and the cell.

>>> src = "def f(x):\\n    # BEGIN SOLUTION\\n    return 2 * x\\n    # END SOLUTION\\n"
>>> print(strip_solutions(src, "ex00_9"))
def f(x):
    raise NotImplementedError("ex00_9: write your answer here")
<BLANKLINE>
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MarkerError", "Region", "find_regions", "has_markers", "stub_line", "strip_solutions"]

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)#\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^(?P<indent>[ \t]*)#\s*END SOLUTION\s*$")
# A one-line answer: some code, then a trailing "# SOLUTION" comment.
_ONE_LINE = re.compile(r"^(?P<indent>[ \t]*)(?P<code>[^#\s].*?)\s*#\s*SOLUTION\s*$")
# Anything that mentions a marker, used to catch misspelt or misplaced markers.
_ANY = re.compile(r"#\s*(BEGIN|END)?\s*SOLUTION\b")


class MarkerError(ValueError):
    """A solution marker is unclosed, nested, stray or misspelt; the message names the cell."""


@dataclass(frozen=True)
class Region:
    """One solution region: lines ``start``..``end`` (0-based, inclusive) of a cell's source."""

    start: int
    end: int
    indent: str
    one_line: bool


def _where(notebook: str, cell: int | None) -> str:
    parts = [p for p in (notebook, f"cell {cell}" if cell is not None else "") if p]
    return f"{', '.join(parts)}: " if parts else ""


def find_regions(source: str, notebook: str = "", cell: int | None = None) -> list[Region]:
    """Return the solution regions of one cell's ``source``, in order.

    ``notebook`` and ``cell`` only serve error messages. Raises :class:`MarkerError` for an
    ``# END SOLUTION`` without a BEGIN, a BEGIN inside a region (nesting), a region that is never
    closed, or a ``# SOLUTION`` marker that is neither of the two accepted forms.

    >>> [(r.start, r.end, r.one_line) for r in find_regions("a = 1\\nb = 2  # SOLUTION\\n")]
    [(1, 1, True)]
    >>> find_regions("# BEGIN SOLUTION\\nx = 1\\n", "solutions/00_welcome.ipynb", 3)
    Traceback (most recent call last):
    ...
    tutorlib.grading.markers.MarkerError: solutions/00_welcome.ipynb, cell 3: '# BEGIN SOLUTION' on line 1 is never closed: add '# END SOLUTION' after the answer
    """
    where = _where(notebook, cell)
    regions: list[Region] = []
    open_at: int | None = None
    open_indent = ""
    for i, line in enumerate(source.splitlines()):
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            if open_at is not None:
                raise MarkerError(
                    f"{where}'# BEGIN SOLUTION' on line {i + 1} is nested inside the region opened on line "
                    f"{open_at + 1}: close the first region with '# END SOLUTION' before opening another"
                )
            open_at, open_indent = i, begin.group("indent")
        elif end:
            if open_at is None:
                raise MarkerError(
                    f"{where}'# END SOLUTION' on line {i + 1} has no matching '# BEGIN SOLUTION' above it"
                )
            regions.append(Region(open_at, i, open_indent, one_line=False))
            open_at = None
        elif _ONE_LINE.match(line):
            if open_at is not None:
                raise MarkerError(
                    f"{where}one-line '# SOLUTION' marker on line {i + 1} is nested inside the region opened "
                    f"on line {open_at + 1}: remove it (the whole region is hidden already)"
                )
            regions.append(Region(i, i, _ONE_LINE.match(line).group("indent"), one_line=True))  # type: ignore[union-attr]
        elif _ANY.search(line):
            raise MarkerError(
                f"{where}line {i + 1} mentions a solution marker but is not one of the accepted forms "
                f"('# BEGIN SOLUTION' or '# END SOLUTION' alone on a line, or code followed by '# SOLUTION'): {line.strip()!r}"
            )
    if open_at is not None:
        raise MarkerError(
            f"{where}'# BEGIN SOLUTION' on line {open_at + 1} is never closed: add '# END SOLUTION' after the answer"
        )
    return regions


def has_markers(source: str) -> bool:
    """True when ``source`` mentions any solution marker (well-formed or not).

    >>> has_markers("x = 1  # SOLUTION"), has_markers("x = 1")
    (True, False)
    """
    return any(_ANY.search(line) for line in source.splitlines())


def stub_line(exercise_id: str, indent: str = "") -> str:
    """The line that replaces a solution region.

    >>> stub_line("ex00_2", "    ")
    '    raise NotImplementedError("ex00_2: write your answer here")'
    """
    return f'{indent}raise NotImplementedError("{exercise_id}: write your answer here")'


def strip_solutions(source: str, exercise_id: str, notebook: str = "", cell: int | None = None) -> str:
    """Replace every solution region of ``source`` by a ``NotImplementedError`` stub.

    The stub keeps the indentation of the ``# BEGIN SOLUTION`` line (or of the one-line answer),
    the code around the regions is kept as it is, and a trailing newline is preserved.

    >>> print(strip_solutions("def f():\\n    return 1  # SOLUTION", "ex00_1"))
    def f():
        raise NotImplementedError("ex00_1: write your answer here")
    """
    regions = find_regions(source, notebook, cell)
    if not regions:
        return source
    lines = source.splitlines()
    out: list[str] = []
    i = 0
    for region in regions:
        out.extend(lines[i : region.start])
        out.append(stub_line(exercise_id, region.indent))
        i = region.end + 1
    out.extend(lines[i:])
    text = "\n".join(out)
    return text + "\n" if source.endswith("\n") else text
