"""Small helpers that drive JupyterLab through its exposed application object (tests only)."""

from __future__ import annotations

import time
import uuid

KERNEL_STATUS = "() => window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel?.status ?? 'none'"
BUSY_PROMPTS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-InputPrompt'))
    .filter(p => p.textContent.includes('*')).length"""


def open_notebook(page, lab, relpath: str, timeout: float = 180) -> None:
    # A fresh, reset workspace per page: otherwise JupyterLab restores the notebooks an earlier test opened,
    # and their (hidden) cells would be matched by the cell locators below.
    workspace = uuid.uuid4().hex[:12]
    page.goto(f"{lab['base']}/lab/workspaces/{workspace}/tree/{relpath}?reset&token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout * 1000)
    wait_until(page, lambda: page.evaluate(KERNEL_STATUS) == "idle", timeout, "the kernel to start")
    open_count = page.locator(".jp-Notebook").count()
    assert open_count == 1, f"expected only {relpath} open, found {open_count} notebooks in the page"


def wait_until(page, predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# What the kernel drew in a widget: its text without slider readouts and text boxes (which the browser changes
# on its own when a slider moves) plus the data of every image, so a redrawn figure counts even when the
# number of images stays the same.
OUTPUT_SIGNATURE = """(box) => {
  const copy = box.cloneNode(true);
  copy.querySelectorAll('.widget-readout, input, textarea, select').forEach(e => e.remove());
  const images = Array.from(box.querySelectorAll('img')).map(i => i.src.length + ':' + i.src.slice(-64));
  return copy.textContent + '|' + images.join(',');
}"""


def output_signature(box) -> str:
    """What the kernel has drawn in widget ``box`` (a Playwright locator), ignoring browser-side readouts."""
    return box.evaluate(OUTPUT_SIGNATURE)


def wait_kernel_idle(page, timeout: float = 180) -> None:
    """Wait until the kernel has been idle for three checks in a row (a widget message may just be arriving)."""
    page.wait_for_timeout(1000)
    streak = {"n": 0}

    def settled() -> bool:
        streak["n"] = streak["n"] + 1 if page.evaluate(KERNEL_STATUS) == "idle" else 0
        return streak["n"] >= 3

    wait_until(page, settled, timeout, "the kernel to be idle after a widget interaction")


def run_all(page, timeout: float = 300) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_timeout(1000)
    wait_until(page, lambda: page.evaluate(BUSY_PROMPTS) == 0 and page.evaluate(KERNEL_STATUS) == "idle",
               timeout, "all cells to finish")
    page.wait_for_timeout(1500)  # let widget views and images render


def error_outputs(page) -> list[str]:
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']",
        "els => els.map(e => e.innerText.slice(0, 500))")


def set_cell_source(page, index: int, code: str) -> None:
    """Replace cell ``index``'s text the way a learner would: click into it, select all, type."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)


def run_cell(page, index: int, timeout: float = 180) -> str:
    """Select cell ``index``, run it and return its output text once it has a new execution count."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.inner_text()
    page.evaluate("""(n) => { const nb = window.jupyterapp.shell.currentWidget.content;
                              nb.activeCellIndex = n; nb.mode = 'command'; }""", index)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-cell')")

    def finished() -> bool:
        text = prompt.inner_text()
        return text != before and "*" not in text and any(ch.isdigit() for ch in text) \
            and page.evaluate(KERNEL_STATUS) == "idle"

    wait_until(page, finished, timeout, f"cell {index} to finish")
    page.wait_for_timeout(300)
    outputs = cell.locator(".jp-OutputArea-output")
    return "\n".join(outputs.nth(i).inner_text() for i in range(outputs.count()))
