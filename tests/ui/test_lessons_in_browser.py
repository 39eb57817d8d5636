"""Every lesson in a real JupyterLab + Chromium, in smoke mode: no errors, widgets render as widgets and
respond, figures are there; an exercise answered wrong then right gets the matching check() feedback."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import sys as _sys
_sys.path.insert(0, str(Path(__file__).parent))
from lab_driver import (error_outputs, open_notebook, output_signature, run_all, run_cell, set_cell_source,
                        wait_kernel_idle, wait_until)

pytestmark = [pytest.mark.ui, pytest.mark.xdist_group("ui")]

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET_TEXT_REPR = ("VBox(children", "HBox(children", "IntSlider(value", "FloatSlider(value", "Error displaying widget")

INTERACT = """async (box) => {
  const button = box.querySelector('button.jupyter-button, .widget-button');
  if (button) { button.click(); return 'button'; }
  return 'none';
}"""


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_and_its_widget_responds(lab, page, path):
    open_notebook(page, lab, f"notebooks/{path.name}")
    run_all(page, timeout=400)
    shot = ROOT / "test-artifacts" / "ui" / f"{path.stem}.png"
    page.screenshot(path=str(shot), full_page=True)
    errors = error_outputs(page)
    assert not errors, f"{path.name}: cells raised:\n" + "\n---\n".join(errors)
    text = page.locator(".jp-Notebook").inner_text()
    for repr_text in WIDGET_TEXT_REPR:
        assert repr_text not in text, f"{path.name}: a widget did not render ('{repr_text}' shown as text)"
    assert page.locator(".jp-OutputArea-output .jupyter-widgets").count() > 0, f"{path.name}: no widget rendered"
    assert page.locator(".jp-OutputArea-output img").count() > 0, f"{path.name}: no figure rendered"

    # Interact with the lesson's first course widget and see its output change.
    box = page.locator(".tutorlib-widget").first
    assert box.count() == 1, f"{path.name}: no widget with the tutorlib-widget class"
    box.scroll_into_view_if_needed()
    before = output_signature(box)
    # Move the first slider (if any) three steps and let the kernel answer. Only if that redrew nothing (a
    # slider that merely sets an option) press the first button: pressing it after a slider that did redraw
    # could undo the move (lesson 08's "sliders ← A") and leave the output exactly as it was.
    handle = box.locator(".noUi-handle").first
    if handle.count():
        position = lambda: handle.get_attribute("aria-valuenow")  # noqa: E731 - noUiSlider's own value
        start = position()
        handle.focus()
        for key in ("ArrowRight", "ArrowLeft"):  # left only if the slider already sits at its maximum
            for _ in range(3):
                page.keyboard.press(key)
            page.wait_for_timeout(300)
            if position() != start:
                break
        assert position() != start, f"{path.name}: the first slider did not move with the arrow keys"
        wait_kernel_idle(page)
        page.wait_for_timeout(1500)  # let the redrawn output render
    if output_signature(box) == before:
        kind = box.evaluate(INTERACT)
        assert kind == "button", f"{path.name}: moving the slider changed nothing and the widget has no button"
        wait_until(page, lambda: output_signature(box) != before, 180,
                   f"{path.name}'s widget output to change after pressing its button")
    page.wait_for_timeout(1000)
    box.screenshot(path=str(shot.with_name(f"{path.stem}-widget.png")))


def test_exercise_feedback_wrong_then_right(lab, page):
    nb = nbformat.read(ROOT / "exercises" / "00_welcome.ipynb", as_version=4)
    answer = next(i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("tutorlib", {}).get("exercise") == "ex00_2")
    check_cell = next(i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("tutorlib", {}).get("check") == "ex00_2")
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    open_notebook(page, lab, "exercises/00_welcome.ipynb")
    run_cell(page, setup)

    set_cell_source(page, answer, "def accuracy(logits, labels):\n    return 0.5\n")
    run_cell(page, answer)
    wrong = run_cell(page, check_cell)
    assert "❌" in wrong and "ex00_2" in wrong, wrong

    set_cell_source(page, answer, "def accuracy(logits, labels):\n    return (logits.argmax(dim=1) == labels).float().mean().item()\n")
    run_cell(page, answer)
    right = run_cell(page, check_cell)
    assert "✅ ex00_2 passed" in right, right
    page.screenshot(path=str(ROOT / "test-artifacts" / "ui" / "exercise-00-feedback.png"), full_page=True)
