"""One way for every widget to redraw its output area: :func:`redraw`.

An explorer widget shows its latest result in an ``ipywidgets.Output``: a matplotlib figure, a line
of text, some HTML. Redrawing means clearing the old content (``clear_output(wait=True)``, so the area
does not flicker), displaying the new items, and closing each figure so the notebook does not show it a
second time and memory does not pile up. Outside a Jupyter kernel (tests, scripts) there is nothing to
draw into: figures are only closed.

>>> import matplotlib; matplotlib.use("Agg")
>>> import ipywidgets as w, matplotlib.pyplot as plt
>>> fig, ax = plt.subplots(); out = w.Output()
>>> redraw(out, "no data yet", fig)
>>> plt.fignum_exists(fig.number)
False
"""

from __future__ import annotations

from typing import Any

from tutorlib.widgets.dashboard import in_notebook

__all__ = ["redraw"]


def _is_figure(item: Any) -> bool:
    return type(item).__name__ in ("Figure", "SubFigure") and hasattr(item, "savefig")


def redraw(out: Any, *items: Any) -> None:
    """Replace what ``out`` (an ``ipywidgets.Output``) shows by ``items``: figures, strings (printed), or anything
    IPython can display; each figure is closed afterwards.

    >>> import ipywidgets as w
    >>> redraw(w.Output(), "select at least one optimizer")
    """
    try:
        if in_notebook():
            from IPython.display import clear_output, display

            with out:
                clear_output(wait=True)
                for item in items:
                    if isinstance(item, str):
                        print(item)
                    else:
                        display(item)
    finally:
        if any(_is_figure(i) for i in items):
            import matplotlib.pyplot as plt

            for item in items:
                if _is_figure(item):
                    plt.close(item)
