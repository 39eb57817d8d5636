"""The notebook executor used by the tests and benchmarks/course.py nudges the kernel without disturbing a run."""

from __future__ import annotations

import nbformat
import pytest

from tutorlib.grading.nbexec import NudgingClient


def test_nudges_during_a_long_cell_leave_outputs_and_order_intact():
    cells = [nbformat.v4.new_code_cell("import time\nx = 1"),
             nbformat.v4.new_code_cell("for i in range(3):\n    time.sleep(0.3)\n    print(i, flush=True)\nx += 1"),
             nbformat.v4.new_code_cell("print('x =', x)")]
    nb = nbformat.v4.new_notebook(cells=cells)
    client = NudgingClient(nb, timeout=60, kernel_name="python3", nudge_s=0.05)
    client.execute()
    assert client.nudges >= 5  # the kernel was poked many times while the second cell slept
    assert "".join(o["text"] for o in nb.cells[1].outputs) == "0\n1\n2\n"
    assert nb.cells[2].outputs[0]["text"] == "x = 2\n"  # every cell ran once, in order
    assert [c.execution_count for c in nb.cells] == [1, 2, 3]


def test_nudge_interval_must_be_positive():
    with pytest.raises(ValueError, match="nudge_s"):
        NudgingClient(nbformat.v4.new_notebook(), nudge_s=0)
