"""The book's landing page, made from README.md so the lesson table is written once.

:func:`readme_parts` reads the README's introduction (the text between the title and the first ``##``
section) and the table of section "The lessons"; :func:`landing_page` fills them into ``book/index.md``
(at ``<!-- README: intro -->`` and ``<!-- README: lessons -->``) and adds a column of download links to
each lesson's exercise and solution notebooks.

>>> readme = "# Course\\n\\nIntro.\\n\\n## The lessons\\n\\n| # | lesson |\\n|---|---|\\n| 00 | [Hi](notebooks/00_hi.ipynb) |\\n"
>>> parts = readme_parts(readme)
>>> parts.title, parts.intro, parts.rows[0]["stem"]
('Course', 'Intro.', '00_hi')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["ReadmeParts", "readme_parts", "lesson_table", "landing_page"]

_LESSON_LINK = re.compile(r"\]\(notebooks/(\d\d_[A-Za-z0-9_]+)\.ipynb\)")


@dataclass
class ReadmeParts:
    """What the landing page takes from the README."""

    title: str
    intro: str
    header: list[str]
    rows: list[dict] = field(default_factory=list)  # {"cells": [...], "stem": "00_welcome"}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def readme_parts(readme: str) -> ReadmeParts:
    """Title, introduction and lesson table of the README text ``readme``.

    >>> readme_parts("# T\\n\\nno lessons here\\n")
    Traceback (most recent call last):
    ...
    ValueError: README.md has no '## The lessons' section with a table: the book's landing page is made from it
    """
    lines = readme.splitlines()
    title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), "The course")
    start = next((i for i, ln in enumerate(lines) if ln.startswith("# ")), -1) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    intro = "\n".join(lines[start:end]).strip()
    try:
        sec = next(i for i, ln in enumerate(lines) if ln.strip() == "## The lessons")
        top = next(i for i in range(sec, len(lines)) if lines[i].startswith("|"))
    except StopIteration:
        raise ValueError("README.md has no '## The lessons' section with a table: "
                         "the book's landing page is made from it") from None
    table = []
    for ln in lines[top:]:
        if not ln.startswith("|"):
            break
        table.append(ln)
    parts = ReadmeParts(title=title, intro=intro, header=_cells(table[0]))
    for ln in table[2:]:
        m = _LESSON_LINK.search(ln)
        if m is None:
            raise ValueError(f"a row of the README's lesson table links no notebooks/NN_name.ipynb: {ln[:80]!r}")
        parts.rows.append({"cells": _cells(ln), "stem": m.group(1)})
    return parts


def lesson_table(parts: ReadmeParts, exercises: set[str], solutions: set[str], columns: int = 3) -> str:
    """The first ``columns`` columns of the README's lesson table (number, lesson, what you do) in MyST, plus a
    column of download links to the lesson (as stored in ``notebooks/``, staged in ``stored/``), exercise and
    solution notebooks (the README's time and memory
    columns would make the table too wide for a page).

    >>> p = readme_parts("# T\\n\\n## The lessons\\n\\n| # | lesson |\\n|---|---|\\n| 00 | [Hi](notebooks/00_hi.ipynb) |\\n")
    >>> print(lesson_table(p, {"00_hi"}, set()))
    | # | lesson | notebooks |
    |---|---|---|
    | 00 | [Hi](notebooks/00_hi.ipynb) | {download}`lesson <stored/00_hi.ipynb>` · {download}`exercises <exercises/00_hi.ipynb>` |
    """
    header = parts.header[:columns]
    out = ["| " + " | ".join(header + ["notebooks"]) + " |", "|" + "---|" * (len(header) + 1)]
    for row in parts.rows:
        stem = row["stem"]
        links = [f"{{download}}`lesson <stored/{stem}.ipynb>`"]
        if stem in exercises:
            links.append(f"{{download}}`exercises <exercises/{stem}.ipynb>`")
        if stem in solutions:
            links.append(f"{{download}}`solutions <solutions/{stem}.ipynb>`")
        out.append("| " + " | ".join(row["cells"][:columns] + [" · ".join(links)]) + " |")
    return "\n".join(out)


def landing_page(template: str, parts: ReadmeParts, exercises: set[str], solutions: set[str]) -> str:
    """``template`` (book/index.md) with the README's title, introduction and lesson table filled in.

    >>> p = readme_parts("# T\\n\\nHello.\\n\\n## The lessons\\n\\n| # | lesson |\\n|---|---|\\n| 00 | [Hi](notebooks/00_hi.ipynb) |\\n")
    >>> page = landing_page("# <!-- README: title -->\\n<!-- README: intro -->\\n<!-- README: lessons -->", p, set(), set())
    >>> page.splitlines()[:2], "| 00 | [Hi](notebooks/00_hi.ipynb) |" in page
    (['# T', 'Hello.'], True)
    """
    if "<!-- README: lessons -->" not in template:
        raise ValueError("book/index.md lacks the marker <!-- README: lessons -->: put it where the lesson table goes")
    return (template.replace("<!-- README: title -->", parts.title)
            .replace("<!-- README: intro -->", parts.intro)
            .replace("<!-- README: lessons -->", lesson_table(parts, exercises, solutions)))
