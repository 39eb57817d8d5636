"""Solution markers: finding regions, stubbing them, and rejecting malformed ones with a located message."""

from __future__ import annotations

import ast

import pytest

from tutorlib.grading.markers import MarkerError, find_regions, has_markers, strip_solutions, stub_line


def test_block_region_inside_a_function_becomes_an_indented_stub_that_still_parses() -> None:
    src = (
        "def f(x):\n"
        '    """Double x."""\n'
        "    # BEGIN SOLUTION\n"
        "    y = 2 * x\n"
        "    return y\n"
        "    # END SOLUTION\n"
        "\n"
        "print('defined')\n"
    )
    out = strip_solutions(src, "ex00_7")
    assert out == (
        "def f(x):\n"
        '    """Double x."""\n'
        '    raise NotImplementedError("ex00_7: write your answer here")\n'
        "\n"
        "print('defined')\n"
    )
    ast.parse(out)
    namespace: dict = {}
    exec(compile(out.replace("print('defined')", ""), "<cell>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="ex00_7: write your answer here"):
        namespace["f"](1)


def test_one_line_answer_keeps_its_indentation_and_the_rest_of_the_cell() -> None:
    src = "def g(m):\n    return sum(p.numel() for p in m.parameters())  # SOLUTION\nz = 3"
    assert strip_solutions(src, "ex01_2") == 'def g(m):\n    raise NotImplementedError("ex01_2: write your answer here")\nz = 3'


def test_several_regions_in_one_cell_and_tabs() -> None:
    src = "a = 1  # SOLUTION\nif True:\n\t# BEGIN SOLUTION\n\tb = 2\n\t# END SOLUTION\nc = 3\n"
    regions = find_regions(src)
    assert [(r.start, r.end, r.one_line, r.indent) for r in regions] == [(0, 0, True, ""), (2, 4, False, "\t")]
    assert strip_solutions(src, "ex00_1") == (
        f"{stub_line('ex00_1')}\nif True:\n{stub_line('ex00_1', chr(9))}\nc = 3\n"
    )


def test_source_without_markers_is_returned_unchanged() -> None:
    src = "x = 1  # a solution of sorts, lower case\n"
    assert find_regions(src) == []
    assert strip_solutions(src, "ex00_1") is src
    assert not has_markers(src)


def test_unclosed_region_names_notebook_cell_and_line() -> None:
    with pytest.raises(MarkerError, match=r"^solutions/00_x\.ipynb, cell 4: '# BEGIN SOLUTION' on line 2 is never closed"):
        find_regions("def f():\n    # BEGIN SOLUTION\n    return 1\n", "solutions/00_x.ipynb", 4)


def test_nested_region_is_rejected() -> None:
    src = "# BEGIN SOLUTION\na = 1\n# BEGIN SOLUTION\nb = 2\n# END SOLUTION\n# END SOLUTION\n"
    with pytest.raises(MarkerError, match=r"cell 1: '# BEGIN SOLUTION' on line 3 is nested inside the region opened on line 1"):
        find_regions(src, "nb.ipynb", 1)


def test_one_line_marker_inside_a_block_is_nesting() -> None:
    with pytest.raises(MarkerError, match="one-line '# SOLUTION' marker on line 2 is nested"):
        find_regions("# BEGIN SOLUTION\nx = 1  # SOLUTION\n# END SOLUTION\n")


def test_end_without_begin_is_rejected() -> None:
    with pytest.raises(MarkerError, match=r"'# END SOLUTION' on line 2 has no matching '# BEGIN SOLUTION'"):
        find_regions("x = 1\n# END SOLUTION\n")


@pytest.mark.parametrize("line", ["# SOLUTION", "    # BEGIN SOLUTION here", "x = 1 # END SOLUTION"])
def test_misplaced_or_misspelt_markers_are_rejected_rather_than_leaking_the_answer(line: str) -> None:
    assert has_markers(line)
    with pytest.raises(MarkerError, match="not one of the accepted forms"):
        find_regions(line + "\n", "nb.ipynb", 0)
