"""Load a folder written by ``tutorlib finetune`` and classify texts: labels and probabilities.

>>> import tempfile
>>> from tutorlib.peft import build_model, save_trained
>>> folder = save_trained(build_model("head", num_labels=2), tempfile.mkdtemp(),
...                       extra={"labels": ["neg", "pos"], "text_col": "text", "max_length": 64})
>>> p = Predictor(folder)
>>> out = p.predict(["the soup was cold"])
>>> out[0]["label"] in ("neg", "pos"), round(sum(out[0]["probabilities"].values()), 4)
(True, 1.0)
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["Predictor", "format_prediction", "predict_file"]


class Predictor:
    """A fine-tuned classifier ready for inference: ``predict(texts)`` → label + probabilities per text.

    ``folder`` holds ``tutorlib_model.json`` and the weights (see :func:`tutorlib.peft.save_trained`).
    ``base`` overrides the base model recorded at training time (a local folder or hub id).
    """

    def __init__(self, folder: str | Path, device: str | torch.device | None = None,
                 base: str | None = None, batch_size: int = 32) -> None:
        from tutorlib.models import load_tokenizer, resolve_model_path
        from tutorlib.peft.methods import load_trained, read_config
        from tutorlib.runtime import get_device

        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"model folder {folder} does not exist: pass the --out folder of `tutorlib finetune`")
        self.folder = folder
        self.meta = read_config(folder)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        n = int(self.meta["num_labels"])
        self.labels: list[str] = list(self.meta.get("labels") or [str(i) for i in range(n)])
        if len(self.labels) != n:
            raise ValueError(f"{folder}: {len(self.labels)} label names for a {n}-class model: the folder is inconsistent")
        self.text_col: str = self.meta.get("text_col", "text")
        self.label_col: str | None = self.meta.get("label_col")
        self.max_length: int = int(self.meta.get("max_length", 128))
        self.batch_size = batch_size
        self.device = get_device(device)
        recorded = self.meta.get("base")
        try:
            base_path = resolve_model_path(base if base is not None else recorded)
        except FileNotFoundError as exc:
            if base is not None:
                raise
            raise FileNotFoundError(f"{exc}. The model in {folder} was trained on the base model {recorded!r}: "
                                    "pass --base with its current location") from None
        self.tokenizer = load_tokenizer(base_path)
        self.model = load_trained(folder, base=base_path).to(self.device).eval()

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str]) -> torch.Tensor:
        """Class probabilities, a float tensor (N, C) on the CPU.

        Uses :func:`tutorlib.train.predict` (the Trainer's batched loop: device placement, autocast) with placeholder labels.
        """
        from tutorlib.data import text_collate
        from tutorlib.finetune.io import TextClassificationDataset
        from tutorlib.train import predict

        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ValueError("no texts to classify: pass at least one")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f"text number {bad[0] + 1} is empty or not a string: pass non-empty strings")
        logits, _ = predict(self.model, TextClassificationDataset(texts, [0] * len(texts)), device=self.device,
                            batch_size=self.batch_size, collate_fn=text_collate(self.tokenizer, self.max_length))
        return logits.float().softmax(dim=-1)

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """One dict per text: ``label``, ``probability`` (of that label), ``probabilities`` (label → p), ``text``."""
        if isinstance(texts, str):
            texts = [texts]
        probs = self.predict_proba(texts)
        out = []
        for text, p in zip(texts, probs):
            k = int(p.argmax())
            out.append({"text": text, "label": self.labels[k], "probability": float(p[k]),
                        "probabilities": {name: float(v) for name, v in zip(self.labels, p)}})
        return out


def format_prediction(pred: dict[str, Any], width: int = 60) -> str:
    """One readable line: the label, its probability, every class's probability and the (shortened) text.

    >>> format_prediction({"text": "fine", "label": "pos", "probability": 0.9, "probabilities": {"neg": 0.1, "pos": 0.9}})
    'pos\\t0.900\\t(neg 0.100, pos 0.900)\\tfine'
    """
    text = pred["text"].replace("\n", " ")
    if len(text) > width:
        text = text[: width - 1] + "…"
    others = ", ".join(f"{k} {v:.3f}" for k, v in pred["probabilities"].items())
    return f"{pred['label']}\t{pred['probability']:.3f}\t({others})\t{text}"


def predict_file(predictor: Predictor, path: str | Path, text_col: str | None = None, label_col: str | None = None,
                 *, encoding: str = "utf-8-sig", fmt: str | None = None) -> tuple[str, dict[str, Any]]:
    """Classify every row of a CSV/TSV/JSONL file; returns (CSV text of the predictions, summary).

    The CSV has the source line, the text, the predicted label, its probability and one column per
    class. When the file has the label column (``label_col``, default: the training one if present),
    the summary includes the accuracy.
    """
    from tutorlib.finetune.io import read_table

    text_col = text_col or predictor.text_col
    table = read_table(path, text_col, None, encoding=encoding, fmt=fmt)
    gold: list[str] | None = None
    wanted = label_col or predictor.label_col
    if wanted:
        try:
            gold = read_table(path, text_col, wanted, encoding=encoding, fmt=fmt, skip_empty=True).labels
            if gold is not None and len(gold) != len(table):
                gold = None  # some rows lack a label: no accuracy
        except ValueError:
            if label_col:  # asked for explicitly: report the problem
                raise
            gold = None
    preds = predictor.predict(table.texts)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["line", text_col, "predicted", "probability", *[f"p_{n}" for n in predictor.labels]])
    for line, pred in zip(table.lines, preds):
        writer.writerow([line, pred["text"], pred["label"], f"{pred['probability']:.4f}",
                         *[f"{pred['probabilities'][n]:.4f}" for n in predictor.labels]])
    summary: dict[str, Any] = {"rows": len(preds)}
    if gold is not None:
        correct = sum(p["label"] == g for p, g in zip(preds, gold))
        summary.update(accuracy=correct / len(preds), correct=correct)
    return buf.getvalue(), summary
