"""The ``finetune`` and ``predict`` subcommands of ``tutorlib`` (also ``python -m tutorlib.finetune``).

``tutorlib.cli`` adds them with :func:`add_finetune_parser` and :func:`add_predict_parser`; each
sets ``func`` to a function ``(args) -> int`` (0 on success, 2 for a usage or data problem, whose
message is printed on stderr as ``error: …``; set ``TUTORLIB_DEBUG=1`` for the traceback).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="tutorlib"); sub = parser.add_subparsers(dest="command")
>>> _ = add_finetune_parser(sub); _ = add_predict_parser(sub)
>>> args = parser.parse_args(["finetune", "--data", "train.csv", "--method", "ia3"])
>>> args.method, args.text_col, callable(args.func)
('ia3', 'text', True)
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable

from tutorlib.command import (existing_file, positive_float, positive_int, quiet_libraries, run_guarded,
                              write_table)
from tutorlib.finetune.options import TASK_DEFAULTS, TASK_NAMES, FinetuneConfig, cli_options

__all__ = ["add_finetune_parser", "add_predict_parser", "build_parser", "main"]


_FINETUNE_EPILOG = """examples:
  tutorlib finetune --data reviews.csv --text-col review --label-col stars
  tutorlib finetune --data train.jsonl --val-data dev.jsonl --method full --epochs 2 --out runs/full
  tutorlib finetune --data reviews.csv --out runs/lora --resume        # continue an interrupted run
  tutorlib predict --model runs/finetune "The battery died after a day."
  tutorlib finetune --task causal-lm --data sft.jsonl --out runs/sft     # LoRA SFT of SmolLM2
  tutorlib generate --model runs/sft "your prompt"
  tutorlib finetune --task preference --data pairs.jsonl --model runs/sft --out runs/dpo

Classification learning rates were measured on the course's review data (LoRA r=8 on query/value 2e-3,
full fine-tuning 5e-5); causal-lm's defaults fit a Llama (LoRA r=16 on q/k/v/o, lr 1e-3, batch 8)."""


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``fn`` run under the one error policy of every ``tutorlib`` subcommand (:func:`tutorlib.command.run_guarded`)."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        return run_guarded(fn, args)

    return run


def _cmd_finetune(args: argparse.Namespace) -> int:
    existing_file(args.data)  # before torch is imported: a wrong path answers at once
    if args.val_data:
        existing_file(args.val_data, "validation file")
    quiet_libraries()
    from tutorlib.finetune import run

    values = {f.name: getattr(args, f.name) for _, f in cli_options()}
    if values["target_modules"] is not None:
        values["target_modules"] = tuple(values["target_modules"])
    run.finetune(FinetuneConfig(**values, progress=not args.quiet))
    return 0


_KINDS: dict[str, Any] = {"int": int, "float": float, "pos_int": positive_int, "pos_float": positive_float}


def _help(f: Any) -> str:
    """An option's help with its default: its own, or each task's (:data:`TASK_DEFAULTS`)."""
    text, tasks = f.metadata["help"], f.metadata["tasks"]
    if f.default is None and f.name != "model" and any(f.name in TASK_DEFAULTS[t] for t in tasks):
        per_task = []
        for t in tasks:
            value = TASK_DEFAULTS[t].get(f.name)
            shown = " ".join(value) if isinstance(value, tuple) else ("the method's measured rate" if value is None
                                                                         and f.name == "lr" else value)
            if value is not None or f.name == "lr":
                per_task.append(f"{t} {shown}")
        text += f" (default: {'; '.join(per_task)})" if per_task else ""
    elif f.default not in (None, False) and f.metadata["kind"] != "flag":
        text += f" (default {f.default})"
    if tasks != TASK_NAMES:
        text = f"[{', '.join(tasks)}] " + text
    return text.replace("%", "%%")


def add_finetune_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``finetune`` to an argparse ``subparsers`` object; returns its parser (``func`` is set). Its options
    are the fields of :class:`~tutorlib.finetune.options.FinetuneConfig`, declared once there.

    >>> import argparse; sub = argparse.ArgumentParser().add_subparsers()
    >>> add_finetune_parser(sub).prog.endswith("finetune")
    True
    """
    p = subparsers.add_parser(
        "finetune", help="fine-tune the text classifier, or a causal LM (SFT or DPO), on your own data file",
        description="Fine-tune on your file: a text classifier (the bundled MiniLM, or --model) with full "
                    "fine-tuning, a linear head or a parameter-efficient method; or, with --task causal-lm / "
                    "preference, LoRA SFT / DPO of a causal LM (the bundled SmolLM2 by default). Writes the adapter "
                    "or model and metrics.json to --out; `tutorlib predict --model OUT` (classifier) or "
                    "`tutorlib generate --model OUT` (causal LM) uses them.",
        epilog=_FINETUNE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, f in cli_options():
        kind = f.metadata["kind"]
        kwargs: dict[str, Any] = {"dest": f.name, "help": _help(f)}
        if f.metadata["required"]:
            kwargs["required"] = True
        else:
            kwargs["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
        if kind == "flag":
            kwargs["action"] = "store_true"
        else:
            if kind == "list":
                kwargs["nargs"] = "+"
            elif kind in _KINDS:
                kwargs["type"] = _KINDS[kind]
            if f.metadata["choices"]:
                kwargs["choices"] = f.metadata["choices"]
            if f.metadata["metavar"]:
                kwargs["metavar"] = f.metadata["metavar"]
        p.add_argument(flag, **kwargs)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_guarded(_cmd_finetune))
    return p


def _cmd_predict(args: argparse.Namespace) -> int:
    if not args.texts and not args.data:
        raise ValueError("nothing to classify: give one or more texts in quotes, or --data FILE")
    if args.texts and args.data:
        raise ValueError("give texts or --data FILE, not both")
    if args.data:
        existing_file(args.data)
    quiet_libraries()
    from tutorlib.finetune.predict import Predictor, format_prediction, predict_file

    from tutorlib.models import LLM_NAMES, model_folder_kind

    kind = model_folder_kind(args.model)
    if kind in ("causal-lm", "adapter") or (kind is None and args.model in LLM_NAMES and not Path(args.model).exists()):
        raise ValueError(f"{args.model} is a causal language model, not a classifier: generate text with "
                         f"`tutorlib generate --model {args.model} \"your prompt\"`")
    predictor = Predictor(args.model, device=args.device, base=args.base, batch_size=args.batch_size)
    if args.texts:
        for pred in predictor.predict(args.texts):
            print(json.dumps(pred) if args.json else format_prediction(pred), flush=True)
        return 0
    table, summary = predict_file(predictor, args.data, args.text_col, args.label_col, encoding=args.encoding,
                                  fmt=args.format)
    where = write_table(table, args.out, "predictions")
    line = f"{summary['rows']} rows classified ({where})"
    if "accuracy" in summary:
        line += f"; accuracy against the file's labels {100 * summary['accuracy']:.1f} % ({summary['correct']}/{summary['rows']})"
    print(line, file=sys.stderr)
    return 0


def add_predict_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``predict`` to an argparse ``subparsers`` object; returns its parser (``func`` is set).

    >>> import argparse; sub = argparse.ArgumentParser().add_subparsers()
    >>> add_predict_parser(sub).prog.endswith("predict")
    True
    """
    p = subparsers.add_parser(
        "predict", help="classify texts with a model from `tutorlib finetune`",
        description="Print the predicted label and the class probabilities for each text, or for every row of "
                    "--data FILE (as CSV, to stdout or --out).")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (quote each one)")
    p.add_argument("--model", required=True, metavar="DIR", help="the --out folder of `tutorlib finetune`")
    p.add_argument("--data", metavar="FILE", help="classify every row of this .csv/.tsv/.jsonl/.json file")
    p.add_argument("--text-col", metavar="C", help="text column of --data (default: the one used in training)")
    p.add_argument("--label-col", metavar="C", help="label column of --data, to report accuracy (default: training's, if present)")
    p.add_argument("--out", metavar="FILE", help="write the --data predictions to this CSV instead of stdout")
    p.add_argument("--json", action="store_true", help="print one JSON object per text")
    p.add_argument("--base", metavar="PATH_OR_HUB_ID", help="base model, if it moved since training")
    p.add_argument("--batch-size", type=positive_int, default=32, help="batch size (default 32)")
    p.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    p.add_argument("--encoding", default="utf-8-sig", help="text encoding of --data (default UTF-8)")
    p.add_argument("--format", choices=("csv", "tsv", "jsonl", "json"), help="format of --data (default: from the suffix)")
    p.set_defaults(func=_guarded(_cmd_predict))
    return p


def build_parser() -> argparse.ArgumentParser:
    """A parser with just the two subcommands (for ``python -m tutorlib.finetune``).

    >>> build_parser().parse_args(["predict", "--model", "runs/x", "hello"]).texts
    ['hello']
    """
    parser = argparse.ArgumentParser(prog="python -m tutorlib.finetune",
                                     description="Fine-tune a text classifier on your data, and use it.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_finetune_parser(sub)
    add_predict_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``finetune`` or ``predict`` with ``argv``; returns the exit code.

    >>> main(["predict", "--model", "/nonexistent", "hi"])
    2
    """
    args = build_parser().parse_args(argv)
    return int(args.func(args))
