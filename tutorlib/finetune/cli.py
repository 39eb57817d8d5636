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
from tutorlib.finetune.options import DEFAULT_EPOCHS, METHOD_NAMES, TASK_NAMES

__all__ = ["add_finetune_parser", "add_predict_parser", "build_parser", "main"]


_FINETUNE_EPILOG = """examples:
  tutorlib finetune --data reviews.csv --text-col review --label-col stars
  tutorlib finetune --data train.jsonl --val-data dev.jsonl --method full --epochs 2 --out runs/full
  tutorlib finetune --data reviews.csv --out runs/lora --resume        # continue an interrupted run
  tutorlib predict --model runs/finetune "The battery died after a day."
  tutorlib finetune --task causal-lm --data sft.jsonl --model path/to/causal-lm --out runs/sft

Default learning rates were measured on the course's review data (LoRA r=8 on query/value 2e-3,
full fine-tuning 5e-5); pass --lr to override."""


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
    from tutorlib.finetune.run import FinetuneConfig, finetune


    config = FinetuneConfig(
        data=args.data, text_col=args.text_col, label_col=args.label_col, val_data=args.val_data,
        val_fraction=args.val_fraction, task=args.task, method=args.method, model=args.model, epochs=args.epochs,
        lr=args.lr, batch_size=args.batch_size, max_length=args.max_length, out=args.out, resume=args.resume,
        seed=args.seed, device=args.device, precision=args.precision, r=args.r, alpha=args.alpha,
        target_modules=tuple(args.target_modules), encoding=args.encoding, fmt=args.format,
        skip_empty=args.skip_empty, checkpoint_every=args.checkpoint_every, progress=not args.quiet,
        extra={"prompt_col": args.prompt_col, "completion_col": args.completion_col},
    )
    finetune(config)
    return 0


def add_finetune_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``finetune`` to an argparse ``subparsers`` object; returns its parser (``func`` is set).

    >>> import argparse; sub = argparse.ArgumentParser().add_subparsers()
    >>> add_finetune_parser(sub).prog.endswith("finetune")
    True
    """
    p = subparsers.add_parser(
        "finetune", help="fine-tune the text classifier (or a causal LM) on your own data file",
        description="Fine-tune a text classifier (the bundled MiniLM, or --model) on your labelled file with "
                    "full fine-tuning, a linear head or a parameter-efficient method. Writes the adapter or model, "
                    "labels.json and metrics.json to --out; `tutorlib predict --model OUT` uses them.",
        epilog=_FINETUNE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="FILE", help="training file: .csv, .tsv, .jsonl or .json")
    p.add_argument("--text-col", default="text", metavar="C", help="column with the text (default: text)")
    p.add_argument("--label-col", default="label", metavar="C", help="column with the label, names or ints (default: label)")
    p.add_argument("--val-data", metavar="FILE", help="validation file (default: split --val-fraction off --data)")
    p.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                   help="share of each class held out for validation when --val-data is absent (default 0.2)")
    p.add_argument("--task", default="classification", choices=TASK_NAMES,
                   help="classification, or causal-lm: LoRA SFT of a causal LM (--model) on prompt/completion JSONL, "
                        "loss on the completion tokens only (default classification)")
    p.add_argument("--prompt-col", default="prompt", metavar="KEY", help="causal-lm: prompt key of each JSONL line (default prompt)")
    p.add_argument("--completion-col", default="completion", metavar="KEY",
                   help="causal-lm: completion key of each JSONL line (default completion)")
    p.add_argument("--method", default="lora", choices=METHOD_NAMES,
                   help="head | full | lora | dora | ia3 | prefix | prompt | houlsby | pfeiffer | lora-ours (default lora)")
    p.add_argument("--model", metavar="PATH_OR_HUB_ID",
                   help="base model: a local folder (save_pretrained) or a hub id (needs a network); default: the "
                        "bundled all-MiniLM-L6-v2, or for --task causal-lm smollm2 (the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS, help=f"epochs (default {DEFAULT_EPOCHS})")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the method's measured default)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="batch size (default 16)")
    p.add_argument("--max-length", type=positive_int, default=128, help="truncate texts to this many tokens (default 128)")
    p.add_argument("--r", type=positive_int, default=8, help="LoRA/DoRA rank (default 8)")
    p.add_argument("--alpha", type=positive_float, help="LoRA/DoRA alpha (default 2·r)")
    p.add_argument("--target-modules", nargs="+", default=["query", "value"], metavar="NAME",
                   help="LoRA/DoRA target layers (default: query value)")
    p.add_argument("--out", default="runs/finetune", metavar="DIR", help="output folder (default runs/finetune)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--checkpoint-every", type=positive_int, metavar="STEPS", help="also checkpoint every STEPS optimizer steps")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available or $TUTORLIB_DEVICE)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16", "auto"), help="autocast precision")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--encoding", default="utf-8-sig", help="text encoding of the files (default UTF-8)")
    p.add_argument("--format", choices=("csv", "tsv", "jsonl", "json"), help="file format (default: from the suffix)")
    p.add_argument("--skip-empty", action="store_true", help="drop rows whose text or label is empty instead of failing")
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
