"""The course book (``bash run.sh book``): every lesson has a page, every internal link and asset resolves,
and no page loads a script, stylesheet, image or font from the network (MathJax is served locally, widget
outputs are static snapshots without widget JavaScript)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from book_helpers import ROOT, built_book

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book")]

LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# attributes that make the browser fetch something when the page loads
LOADS = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("source", "src"),
         ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data")}
EXTERNAL = re.compile(r"^(https?:)?//", re.I)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()
        self.scripts: list[str] = []  # type attributes of inline scripts

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        for key in ("href", "src", "data"):
            if a.get(key) is not None:
                self.refs.append((tag, key, a[key]))
        if tag == "script":
            self.scripts.append(a.get("type") or "")


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    return built_book(tmp_path_factory)


@pytest.fixture(scope="module")
def pages(html) -> dict[Path, _Refs]:
    parsed = {}
    for page in html.rglob("*.html"):
        if "_static" in page.relative_to(html).parts:  # the theme's Jinja macro files, not pages
            continue
        p = _Refs()
        p.feed(page.read_text(encoding="utf-8"))
        parsed[page] = p
    return parsed


def test_one_page_per_lesson_and_a_search_page(html):
    for stem in LESSONS:
        page = html / "notebooks" / f"{stem}.html"
        assert page.is_file(), f"no page for lesson {stem}"
        assert "<h1" in page.read_text(encoding="utf-8"), f"{page.name} has no title"
    assert (html / "search.html").is_file() and (html / "searchindex.js").is_file()
    index = (html / "searchindex.js").read_text(encoding="utf-8")
    for stem in LESSONS:
        assert f'"notebooks/{stem}"' in index, f"lesson {stem} is not in the search index"


def test_landing_page_lists_every_lesson_with_its_notebooks(html, pages):
    refs = [value for _tag, _key, value in pages[html / "index.html"].refs]
    for stem in LESSONS:
        assert f"notebooks/{stem}.html" in refs, f"the landing page does not link lesson {stem}"
        for folder in ("exercises", "solutions"):
            if (ROOT / folder / f"{stem}.ipynb").exists():
                hits = [r for r in refs if r.startswith("_downloads/") and r.endswith(f"/{stem}.ipynb")]
                # the lesson, its exercises and its solutions: one download link each
                assert len(hits) >= 3, f"the landing page lacks the notebook downloads of {stem}: {hits}"
                downloads = sorted(html.glob(f"_downloads/*/{stem}.ipynb"))
                sources = {(ROOT / f / f"{stem}.ipynb").read_bytes() for f in ("notebooks", "exercises", "solutions")}
                assert sources <= {d.read_bytes() for d in downloads}, f"{stem}'s notebook downloads differ from the repository's"


def test_every_internal_link_and_asset_resolves(html, pages):
    broken = []
    checked = 0
    for page, parsed in pages.items():
        for tag, key, value in parsed.refs:
            if not value or value.startswith(("#", "mailto:", "data:", "javascript:")) or EXTERNAL.match(value):
                continue
            url = urlsplit(value)
            if url.scheme:
                broken.append(f"{page.relative_to(html)}: {tag} {key}={value} (a {url.scheme}: URL)")
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            checked += 1
            if not target.is_file():  # a folder is no page either: file:// shows a bare listing
                broken.append(f"{page.relative_to(html)}: {tag} {key}={value} (no such file)")
            elif url.fragment and target.suffix == ".html" and target in pages:
                if unquote(url.fragment) not in pages[target].ids:
                    broken.append(f"{page.relative_to(html)}: {value} (no id {url.fragment!r} in {target.name})")
    assert checked > 500, f"only {checked} internal links checked: the parser found too little"
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken[:30])


def test_nothing_is_loaded_from_the_network(html, pages):
    external = [f"{page.relative_to(html)}: <{tag} {key}={value}>"
                for page, parsed in pages.items() for tag, key, value in parsed.refs
                if (tag, key) in LOADS and EXTERNAL.match(value)]
    assert not external, "pages load from the network:\n" + "\n".join(external[:20])
    for css in html.rglob("*.css"):
        urls = re.findall(r"""url\(\s*['"]?((?:https?:)?//[^'")]+)""", css.read_text(encoding="utf-8", errors="replace"))
        assert not urls, f"{css.relative_to(html)} loads {urls[:3]}"
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for cdn in ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "unpkg.com", "require.min.js", "embed-amd.js"):
            assert cdn not in text, f"{page.relative_to(html)} mentions {cdn}"


def test_maths_uses_the_local_mathjax(html, pages):
    lesson = html / "notebooks" / "01_optimizers.html"
    srcs = [v for tag, key, v in pages[lesson].refs if tag == "script" and "mathjax" in v.lower()]
    assert srcs == ["../_static/mathjax/tex-chtml.js"], srcs
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "\\(" in lesson.read_text(encoding="utf-8"), "lesson 01's $...$ maths was not kept for MathJax"


def test_widget_outputs_are_static_snapshots(html, pages):
    page = html / "extra" / "book_page.html"
    text = page.read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget" not in " ".join(pages[page].scripts) + text
    assert 'class="widget-snapshot"' in text
    assert "steps = 3 · optimizer = adam" in text and "<b>final loss 0.125</b>" in text
    assert '<progress value="5" max="5"></progress>' in text, "tqdm's bar is not shown as it ended"
    images = [v for tag, key, v in pages[page].refs if tag == "img"]
    assert len(images) == 2, f"expected the figure and the widget's figure, found {images}"
    for page in pages:  # no page of the course carries a widget view or the widget state
        assert "application/vnd.jupyter.widget" not in page.read_text(encoding="utf-8"), page.name


def test_book_modules_doctests():
    import doctest
    import sys

    sys.path.insert(0, str(ROOT))
    from book import build, landing, static_widgets

    for mod in (build, landing, static_widgets):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, f"{mod.__name__}: {res}"


def test_building_does_not_write_into_the_repository(html):
    from book_helpers import _BUILT, repository_snapshot

    before, after = _BUILT["before"], repository_snapshot()
    assert sorted(after) == sorted(before), f"the build added or removed {set(after) ^ set(before)}"
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"the build changed {changed}"
