"""The ``tutorlib`` command (also ``python -m tutorlib``): doctor, train, finetune, predict, generate, grade, build-exercises, bench.

>>> from tutorlib.cli import main
>>> main(["train", "--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from tutorlib.command import (existing_file, positive_float, positive_int, quiet_libraries, run_guarded,
                              write_table)

__all__ = ["main", "build_parser", "PRECISIONS"]

#: The Trainer's precisions (``tutorlib.train.PRECISIONS``; a test keeps the two equal), spelled out here so
#: that building the parser imports no torch.
PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def _cmd_doctor(args: argparse.Namespace) -> int:
    from tutorlib.doctor import doctor

    return 0 if doctor().ok else 1


def _cmd_train(args: argparse.Namespace) -> int:
    out = Path(args.out or f"runs/{args.recipe}")
    ckpt_dir = out / "checkpoints"
    if args.resume and not ckpt_dir.is_dir():
        print(f"error: --resume given but {ckpt_dir} does not exist: run without --resume first", file=sys.stderr)
        return 2
    if not args.resume and ckpt_dir.is_dir() and any(ckpt_dir.iterdir()):
        print(f"error: {ckpt_dir} already holds checkpoints: add --resume to continue, or choose another --out",
              file=sys.stderr)
        return 2
    quiet_libraries()
    from safetensors.torch import save_file

    from tutorlib.recipes import build_recipe
    from tutorlib.runtime import get_device, seed_everything
    from tutorlib.train import Trainer

    seed_everything(args.seed)
    device = get_device(args.device)
    recipe = build_recipe(args.recipe, limit=args.limit)
    epochs = args.epochs if args.epochs is not None else recipe.epochs
    lr = args.lr if args.lr is not None else recipe.lr
    batch_size = args.batch_size if args.batch_size is not None else recipe.batch_size
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


def _cmd_generate(args: argparse.Namespace) -> int:
    modes = sum([bool(args.prompts), args.data is not None, args.chat])
    if modes != 1:
        print("error: give one prompt in quotes, or --data FILE, or --chat (exactly one of them)", file=sys.stderr)
        return 2
    if args.chat and args.raw:
        print("error: --chat formats the conversation with the chat template: drop --raw", file=sys.stderr)
        return 2
    if args.temperature < 0 or not 0 < args.top_p <= 1 or args.batch_size < 1 or (
            args.max_new_tokens is not None and args.max_new_tokens < 1):
        print("error: --temperature must be >= 0, --top-p in (0, 1], --batch-size and --max-new-tokens >= 1",
              file=sys.stderr)
        return 2
    if args.data is not None:
        existing_file(args.data)
    quiet_libraries()
    from tutorlib.models import resolve_llm

    resolve_llm(args.model, check_hub=True)  # a bad name, a classifier folder or an offline hub id fails here, fast
    rows = None
    if args.data is not None:
        from tutorlib.finetune.generate import read_prompts

        rows = read_prompts(args.data, args.prompt_col, encoding=args.encoding, fmt=args.data_format,
                            skip_empty=args.skip_empty)
    from tutorlib.finetune.generate import Generator, answers_table

    gen = Generator(args.model, device=args.device, system=args.system, raw=args.raw)
    if args.raw is False and not gen.has_template:
        print(f"note: the tokenizer of {args.model} has no chat template: prompts are used as they are",
              file=sys.stderr)
    sampling = {"temperature": args.temperature, "top_p": args.top_p, "seed": args.seed}
    if rows is not None:
        answers = gen.generate([r.messages if r.messages is not None else r.prompt for r in rows],
                               max_new_tokens=args.max_new_tokens or 64, batch_size=args.batch_size, **sampling)
        where = write_table(answers_table(rows, answers, args.format), args.out, "answers")
        cut = sum(a["finish_reason"] == "length" for a in answers)
        print(f"{len(answers)} prompts answered ({where})" + (f"; {cut} stopped at --max-new-tokens" if cut else ""),
              file=sys.stderr)
        return 0
    max_new = args.max_new_tokens or 256
    if not args.chat:
        for i, prompt in enumerate(args.prompts):
            if i:
                print()
            gen.stream(prompt, max_new_tokens=max_new, **sampling)
        return 0
    if not gen.has_template:
        print(f"error: the tokenizer of {args.model} has no chat template, which --chat needs: use an "
              "instruction-tuned model such as smollm2", file=sys.stderr)
        return 2
    interactive = sys.stdin.isatty()
    if interactive:
        print("chat with the model: type a message and press Enter; an empty line or Ctrl-D ends", file=sys.stderr)
    history: list[dict[str, str]] = []
    while True:
        if interactive:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line or not line.strip():
            return 0
        history.append({"role": "user", "content": line.strip()})
        history = gen.fit_history(gen.messages(history), max_new)
        answer = gen.stream(history, max_new_tokens=max_new, **sampling)
        history.append({"role": "assistant", "content": answer})


_GENERATE_EPILOG = """examples:
  tutorlib generate "What is the capital of France?"
  tutorlib generate --chat --system "You answer in one sentence."
  tutorlib generate --data questions.csv --prompt-col question > answers.csv
  tutorlib generate --data chats.jsonl --format jsonl --max-new-tokens 128
  tutorlib generate --model runs/sft "Write a haiku about rain."     # a `tutorlib finetune --task causal-lm` run
  tutorlib generate --model HuggingFaceTB/SmolLM2-360M-Instruct "Hi"  # a hub id (needs a network)

--model defaults to smollm2, the bundled SmolLM2-135M-Instruct (dequantized Q4_1; converted and cached
under $TUTORLIB_CACHE/llm on first use)."""


def _add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate text with the bundled LLM (or another causal LM): a prompt, a chat or a file",
        description="Answer a prompt (streamed), chat interactively (--chat), or answer every row of --data FILE "
                    "(CSV to stdout or --out). Prompts are formatted with the model's chat template unless --raw.",
        epilog=_GENERATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prompts", nargs="*", metavar="PROMPT", help="prompt(s) to answer, each in quotes")
    p.add_argument("--model", default="smollm2", metavar="NAME_OR_PATH",
                   help="smollm2 (default, bundled), a saved causal-LM folder, a `tutorlib finetune --task causal-lm` "
                        "run folder, a .gguf file, or a hub id (needs a network)")
    p.add_argument("--chat", action="store_true", help="chat: read messages from stdin, one per line, keeping the history")
    p.add_argument("--data", metavar="FILE", help="answer every row of this .csv/.tsv/.jsonl/.json file")
    p.add_argument("--prompt-col", default="prompt", metavar="C",
                   help="prompt column (CSV/TSV) or key (JSONL; lines may give chat 'messages' instead) (default prompt)")
    p.add_argument("--format", default="csv", choices=("csv", "jsonl"), help="output format of --data answers (default csv)")
    p.add_argument("--out", metavar="FILE", help="write the --data answers to this file instead of stdout")
    p.add_argument("--data-format", choices=("csv", "tsv", "jsonl", "json"), help="format of --data (default: from the suffix)")
    p.add_argument("--encoding", default="utf-8-sig", help="text encoding of --data (default UTF-8)")
    p.add_argument("--skip-empty", action="store_true", help="skip rows of --data whose prompt is empty instead of failing")
    p.add_argument("--batch-size", type=int, default=8, help="--data prompts answered at once (default 8)")
    p.add_argument("--max-new-tokens", type=int, metavar="N", help="longest answer in tokens (default 64 with --data, else 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy, the default; > 0 samples")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the smallest set of tokens with this "
                                                            "probability mass (default 1.0 = all; with --temperature > 0)")
    p.add_argument("--seed", type=int, help="random seed for sampling")
    p.add_argument("--system", metavar="TEXT", help="a short system message put before every prompt")
    p.add_argument("--raw", action="store_true", help="feed the prompt as it is, without the chat template")
    p.add_argument("--device", help="cpu, cuda, mps (default: best available or $TUTORLIB_DEVICE)")
    p.set_defaults(func=_cmd_generate)


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

    parser = argparse.ArgumentParser(prog="tutorlib", description="Companion library of the advanced deep-learning course.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("doctor", help="check Python, packages, device and bundled assets",
                       description="Check that this machine is ready for the course; each line says OK or FAIL with the fix.")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("train", help="train a ready-made recipe",
                       description="Train a recipe; writes checkpoints, model.safetensors and metrics.json to --out.")
    p.add_argument("recipe", choices=sorted(RECIPES), metavar="RECIPE", help=f"one of: {', '.join(sorted(RECIPES))}")
    p.add_argument("--epochs", type=positive_int, help="epochs (default: the recipe's)")
    p.add_argument("--batch-size", type=positive_int, help="global batch size (default: the recipe's)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the recipe's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available or $TUTORLIB_DEVICE)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="autocast precision (default fp32)")
    p.add_argument("--out", help="output folder (default runs/RECIPE)")
    p.add_argument("--resume", action="store_true", help="continue exactly from the latest checkpoint in --out")
    p.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="STEPS",
                   help="also checkpoint every STEPS optimizer steps (always at each epoch end)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N examples of each split")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    from tutorlib.grading.cli import add_build_parser, add_grade_parser

    add_grade_parser(sub)
    add_build_parser(sub)
    _add_finetune_parsers(sub)
    _add_generate_parser(sub)

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
    return run_guarded(args.func, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
