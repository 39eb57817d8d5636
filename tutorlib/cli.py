"""The ``tutorlib`` command (also ``python -m tutorlib``): doctor, train, finetune, predict, grade, build-exercises, bench.

>>> from tutorlib.cli import main
>>> main(["train", "--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]


def _cmd_doctor(args: argparse.Namespace) -> int:
    from tutorlib.doctor import doctor

    return 0 if doctor().ok else 1


def _cmd_train(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from tutorlib.recipes import build_recipe
    from tutorlib.runtime import get_device, seed_everything
    from tutorlib.train import Trainer

    seed_everything(args.seed)
    device = get_device(args.device)
    recipe = build_recipe(args.recipe, limit=args.limit)
    out = Path(args.out or f"runs/{args.recipe}")
    ckpt_dir = out / "checkpoints"
    if args.resume and not ckpt_dir.is_dir():
        print(f"error: --resume given but {ckpt_dir} does not exist: run without --resume first", file=sys.stderr)
        return 2
    if not args.resume and ckpt_dir.is_dir() and any(ckpt_dir.iterdir()):
        print(f"error: {ckpt_dir} already holds checkpoints: add --resume to continue, or choose another --out",
              file=sys.stderr)
        return 2
    epochs = args.epochs or recipe.epochs
    lr = args.lr or recipe.lr
    batch_size = args.batch_size or recipe.batch_size
    from tutorlib.train import is_main_process

    if is_main_process():
        print(f"tutorlib train {recipe.name}: {len(recipe.train)} train / {len(recipe.val)} val examples, "
              f"device {device}, precision {args.precision}, {epochs} epochs, lr {lr:g}, batch {batch_size}")
    trainer = Trainer(recipe.model, lr=lr, device=device, precision=args.precision, batch_size=batch_size,
                      seed=args.seed, checkpoint_dir=ckpt_dir, checkpoint_every=args.checkpoint_every,
                      progress=not args.quiet, log=True, **recipe.trainer_kwargs)
    t0 = time.perf_counter()
    history = trainer.fit(recipe.train, recipe.val, epochs=epochs, resume=args.resume)
    seconds = time.perf_counter() - t0
    if not trainer.is_main:  # under torchrun only rank 0 writes results
        return 0
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in trainer.unwrapped_model.state_dict().items()}
    save_file(weights, str(out / "model.safetensors"))
    metrics = {"recipe": recipe.name, "device": str(device), "precision": trainer.precision, "epochs": epochs,
               "lr": lr, "batch_size": batch_size, "seed": args.seed, "seconds": seconds,
               "final": history.epochs[-1] if history.epochs else {}, "history": history.to_dict()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"done in {seconds:.1f} s: weights {out / 'model.safetensors'}, metrics {out / 'metrics.json'}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    root = Path(args.root)
    folder = root / "benchmarks"
    if not folder.is_dir():
        print(f"error: no benchmarks/ folder in {root.resolve()}: run from the course checkout or pass --root",
              file=sys.stderr)
        return 2
    available = sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))
    if not args.name:
        print("benchmarks:", ", ".join(available))
        return 0
    if args.name not in available:
        print(f"error: unknown benchmark {args.name!r}: choose one of {', '.join(available)}", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(folder / f"{args.name}.py"), *args.args])


def _add_finetune_parsers(sub: argparse._SubParsersAction) -> None:
    from tutorlib.finetune.cli import add_finetune_parser, add_predict_parser

    add_finetune_parser(sub)
    add_predict_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``tutorlib`` command.

    >>> build_parser().parse_args(["doctor"]).command
    'doctor'
    """
    from tutorlib.recipes import RECIPES
    from tutorlib.train import PRECISIONS

    parser = argparse.ArgumentParser(prog="tutorlib", description="Companion library of the advanced deep-learning course.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("doctor", help="check Python, packages, device and bundled assets",
                       description="Check that this machine is ready for the course; each line says OK or FAIL with the fix.")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("train", help="train a ready-made recipe",
                       description="Train a recipe; writes checkpoints, model.safetensors and metrics.json to --out.")
    p.add_argument("recipe", choices=sorted(RECIPES), metavar="RECIPE", help=f"one of: {', '.join(sorted(RECIPES))}")
    p.add_argument("--epochs", type=int, help="epochs (default: the recipe's)")
    p.add_argument("--batch-size", type=int, help="global batch size (default: the recipe's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the recipe's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available or $TUTORLIB_DEVICE)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="autocast precision (default fp32)")
    p.add_argument("--out", help="output folder (default runs/RECIPE)")
    p.add_argument("--resume", action="store_true", help="continue exactly from the latest checkpoint in --out")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                   help="also checkpoint every STEPS optimizer steps (always at each epoch end)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N examples of each split")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    from tutorlib.grading.cli import add_build_parser, add_grade_parser

    add_grade_parser(sub)
    add_build_parser(sub)
    _add_finetune_parsers(sub)

    p = sub.add_parser("bench", help="run a benchmark script from the checkout's benchmarks/ folder",
                       description="Run benchmarks/NAME.py (prints a table). Without NAME, list them.")
    p.add_argument("name", nargs="?", help="benchmark name, e.g. trainer_overhead")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    p.add_argument("--root", default=".", help="course checkout (default: current folder)")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``tutorlib`` command with ``argv``; returns the exit code.

    >>> main(["bench", "--root", "/nonexistent"])
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        if os.environ.get("TUTORLIB_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
