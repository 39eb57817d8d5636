"""Widget outputs as static snapshots, so the book needs no widget JavaScript (and no CDN).

A stored notebook shows a widget as an ``application/vnd.jupyter.widget-view+json`` output that points at a
model in the notebook's widget state (``metadata.widgets``, saved by nbclient when it executed the lesson).
A web page can only show it by loading the ipywidgets JavaScript from a CDN. :func:`snapshot_widgets`
replaces each such output by what the widget showed when the notebook ran: one line with its controls'
settings (``n = 3 · optimizer = adam``), then the outputs its ``Output`` areas held (figures, text). A
widget whose state was not stored becomes a one-line note. The widget state is then dropped from the
metadata, so nothing asks for the widget scripts.

>>> nb = {"metadata": {}, "cells": [{"cell_type": "code", "source": "", "outputs": [{"output_type":
...       "display_data", "metadata": {}, "data": {VIEW: {"model_id": "m1"}, "text/plain": "IntSlider()"}}]}]}
>>> snapshot_widgets(nb)
1
>>> [VIEW in o["data"] for o in nb["cells"][0]["outputs"]]
[False]
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["VIEW", "STATE", "snapshot_widgets", "controls_of"]

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
NOTE = "Interactive widget, shown as it was when the notebook ran: open the notebook in JupyterLab to use it."
LIVE = "Live output, shown as it was when the notebook ran."  # a widget without controls (a dashboard)


def _ref(value: Any) -> str | None:
    return value[len("IPY_MODEL_"):] if isinstance(value, str) and value.startswith("IPY_MODEL_") else None


def _setting(state: dict[str, Any]) -> str | None:
    """The value a control shows, as text (``None`` for a widget without one: a box, a button, a label)."""
    labels = state.get("_options_labels")
    if labels is not None and "index" in state:
        index = state["index"]
        if isinstance(index, list):  # SelectMultiple
            return ", ".join(str(labels[i]) for i in index) or "(none)"
        return str(labels[index]) if isinstance(index, int) and 0 <= index < len(labels) else "(none)"
    if "value" in state and not isinstance(state["value"], (dict, list)):
        value = state["value"]
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)
    return None


def controls_of(model_id: str, models: dict[str, Any]) -> tuple[list[str], list[str], list[dict[str, Any]],
                                                                list[tuple[float, float]]]:
    """Walk widget ``model_id`` and its children: (``label = value`` lines, HTML/Label texts, Output outputs,
    progress bars as ``(value, max)``).

    >>> models = {"b": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_o"]}},
    ...           "s": {"model_name": "IntSliderModel", "state": {"description": "n", "value": 3}},
    ...           "o": {"model_name": "OutputModel", "state": {"outputs": [{"output_type": "stream",
    ...                 "name": "stdout", "text": "hi"}]}}}
    >>> settings, texts, outputs, bars = controls_of("b", models)
    >>> settings, len(outputs)
    (['n = 3'], 1)
    """
    settings: list[str] = []
    texts: list[str] = []
    outputs: list[dict[str, Any]] = []
    bars: list[tuple[float, float]] = []
    seen: set[str] = set()

    def walk(mid: str) -> None:
        if mid in seen or mid not in models:
            return
        seen.add(mid)
        model = models[mid]
        name, state = model.get("model_name", ""), model.get("state", {})
        if name == "OutputModel":
            outputs.extend(state.get("outputs", []))
        elif name == "HTMLModel" and state.get("value"):
            texts.append(str(state["value"]))
        elif name == "LabelModel" and state.get("value"):
            texts.append(html.escape(str(state["value"])))
        elif name in ("IntProgressModel", "FloatProgressModel"):
            bars.append((float(state.get("value", 0)), float(state.get("max", 100))))
        elif name not in ("ButtonModel",):
            value = _setting(state)
            if value is not None:
                label = str(state.get("description") or "").rstrip(": ") or name.removesuffix("Model")
                settings.append(f"{label} = {value}")
        for child in state.get("children", []):
            ref = _ref(child)
            if ref:
                walk(ref)

    walk(model_id)
    return settings, texts, outputs, bars


def _snapshot(data: dict[str, Any], models: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    model_id = (data.get(VIEW) or {}).get("model_id", "")
    if model_id not in models:
        kind = str(data.get("text/plain", "widget")).split("(", 1)[0]
        text = f"Interactive widget ({kind}): run the notebook in JupyterLab to use it."
        return [{"output_type": "display_data", "metadata": {},
                 "data": {"text/html": f'<p class="widget-snapshot"><em>{html.escape(text)}</em></p>',
                          "text/plain": text}}]
    settings, texts, outputs, bars = controls_of(model_id, models)
    if bars and not outputs:  # a progress bar (tqdm.auto, a training loop): the bar as it ended, no note
        value, top = bars[0]
        left, right = (texts + ["", ""])[:2] if len(texts) != 1 else ("", texts[0])
        body = f'{left} <progress value="{value:g}" max="{top:g}"></progress> {right}'.strip()
        plain = f"{html.unescape(left)} {value:g}/{top:g} {html.unescape(right)}".strip()
        return [{"output_type": "display_data", "metadata": {},
                 "data": {"text/html": f'<div class="widget-snapshot progress">{body}</div>', "text/plain": plain}}]
    line = " · ".join(settings)
    says = NOTE if settings else LIVE
    body = f"<em>{html.escape(says)}</em>" + (f"<br><code>{html.escape(line)}</code>" if line else "")
    body += "".join(f"<div>{t}</div>" for t in texts)
    note = {"output_type": "display_data", "metadata": {},
            "data": {"text/html": f'<div class="widget-snapshot">{body}</div>',
                     "text/plain": says + (f"\n{line}" if line else "")}}
    shown = []
    for out in outputs:  # a widget displayed inside an Output area is snapshotted too
        data = out.get("data") or {}
        shown.extend(_snapshot(data, models, depth + 1) if VIEW in data and depth < 8 else [dict(out)])
    return [note] + shown


def snapshot_widgets(nb: dict[str, Any]) -> int:
    """Replace every widget output of notebook ``nb`` (a dict, changed in place) by a static snapshot.

    Returns how many widget outputs were replaced; the notebook's widget state is removed.

    >>> snapshot_widgets({"metadata": {}, "cells": []})
    0
    """
    widgets = nb.get("metadata", {}).pop("widgets", None) or {}
    models = (widgets.get(STATE) or {}).get("state", {})
    count = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        new_outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            if VIEW in data:
                new_outputs.extend(_snapshot(data, models))
                count += 1
            else:
                new_outputs.append(out)
        cell["outputs"] = new_outputs
    return count
