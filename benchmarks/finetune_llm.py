"""Benchmark: ``tutorlib finetune --task causal-lm`` against a plain torch + ``peft`` loop on the bundled SmolLM2.

Both train the same LoRA (r=16, alpha=32 on q/k/v/o, AdamW lr 1e-3, batch 8, one epoch, ``--seed``, default 0) on the
same tokenised examples: the course's review → JSON extraction set (``tutorlib/data/instruction_sets``,
``--examples N`` training reviews, one short instruction as the prompt, SmolLM2's chat template with a
one-line system message). The plain loop shuffles and pads each batch to its longest example; the driver
buckets by length. Reported, for each: wall time, CPU time, tokens/s (non-padding tokens trained per
second of wall time), and on the held-out reviews (other product domains) the loss and next-token
accuracy on the answer tokens, against the untuned model. The two runs follow each other in one process,
under the same load.

Usage::

    python benchmarks/finetune_llm.py --examples 200 --heldout 60      # a few minutes on a busy 2-core machine
    python benchmarks/finetune_llm.py --examples 400 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

# this folder holds a peft.py benchmark, which must not shadow the peft library
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

SYSTEM = "You extract product reviews into JSON."
INSTRUCTION = ("Extract this review as JSON with the keys product, sentiment, rating, issue and would_recommend.\n"
               "Review: ")


def plain_loop(model, examples, pad_id: int, *, lr: float, batch_size: int, seed: int) -> dict:
    """The baseline: shuffle, pad each batch to its longest example, LoRA via peft, AdamW."""
    from peft import LoraConfig, TaskType, get_peft_model

    from tutorlib.llm.sft import collate

    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type=TaskType.CAUSAL_LM,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    model.train()
    tokens = padded = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(order), batch_size):
        batch = collate([examples[i] for i in order[start:start + batch_size]], pad_id)
        tokens += int(batch["attention_mask"].sum())
        padded += batch["input_ids"].numel()
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"model": model, "seconds": wall, "cpu_seconds": cpu, "tokens": tokens, "padded_tokens": padded,
            "tokens_per_s": tokens / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=400, help="training reviews (at most the set's 400)")
    parser.add_argument("--heldout", type=int, default=120, help="held-out reviews to evaluate on")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--seed", type=int, default=0, help="seed of both runs (LoRA initialisation, batch order)")
    parser.add_argument("--out", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tutorlib.data.instructions import load_extraction
    from tutorlib.finetune import FinetuneConfig, finetune
    from tutorlib.llm.sft import evaluate_sft, prompt_completion_example
    from tutorlib.models import llm_path

    train_set = load_extraction("train")[:args.examples]
    held_set = load_extraction("heldout")[:args.heldout]
    folder = llm_path("smollm2")
    tok = AutoTokenizer.from_pretrained(folder)
    pad_id = int(tok.pad_token_id)

    def encode(rows):
        return [prompt_completion_example(tok, INSTRUCTION + r.review, r.answer, system=SYSTEM) for r in rows]

    train, held = encode(train_set), encode(held_set)
    lengths = [len(e["input_ids"]) for e in train]
    answer = [sum(y != -100 for y in e["labels"]) for e in train]
    print(f"{len(train)} training examples: {sum(lengths) / len(lengths):.0f} tokens on average "
          f"({min(lengths)}-{max(lengths)}), {sum(answer) / len(answer):.0f} of them the answer; "
          f"{len(held)} held-out; torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or 'cpu'}",
          flush=True)

    # 1. the plain loop (and the untuned model's held-out scores, measured on the same base weights)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    untuned = evaluate_sft(model, held, batch_size=8, pad_id=pad_id)
    plain = plain_loop(model, train, pad_id, lr=1e-3, batch_size=8, seed=args.seed)
    plain_eval = evaluate_sft(plain.pop("model"), held, batch_size=8, pad_id=pad_id)
    print(f"plain loop: {plain['seconds']:.0f} s ({plain['cpu_seconds']:.0f} s CPU), {plain['tokens_per_s']:.0f} "
          f"tokens/s, {plain['padded_tokens'] / plain['tokens']:.2f}x padding; held-out loss {untuned['loss']:.3f} "
          f"→ {plain_eval['loss']:.3f}, accuracy {100 * untuned['token_accuracy']:.1f} % → "
          f"{100 * plain_eval['token_accuracy']:.1f} %", flush=True)
    del model

    # 2. the driver, through the same entry point as the command line
    with tempfile.TemporaryDirectory() as tmp:
        def write(path, rows):
            Path(path).write_text("".join(json.dumps({"prompt": INSTRUCTION + r.review, "completion": r.answer}) + "\n"
                                          for r in rows), encoding="utf-8")
            return str(path)

        cpu = time.process_time()
        metrics = finetune(FinetuneConfig(data=write(Path(tmp) / "train.jsonl", train_set), task="causal-lm",
                                          val_data=write(Path(tmp) / "held.jsonl", held_set), system=SYSTEM,
                                          out=str(Path(tmp) / "run"), progress=False, verbose=False, seed=args.seed))
        cpu = time.process_time() - cpu
    ours = {"seconds": metrics["seconds"], "cpu_seconds": metrics["cpu_seconds"], "tokens": metrics["trained_tokens"],
            "tokens_per_s": metrics["tokens_per_s"], "cpu_seconds_whole_run": cpu}
    print(f"tutorlib finetune: {ours['seconds']:.0f} s ({ours['cpu_seconds']:.0f} s CPU), {ours['tokens_per_s']:.0f} "
          f"tokens/s; held-out loss "
          f"{metrics['untuned_val_loss']:.3f} → {metrics['val_loss']:.3f}, accuracy "
          f"{100 * metrics['untuned_val_token_accuracy']:.1f} % → {100 * metrics['val_token_accuracy']:.1f} %",
          flush=True)
    print(f"tutorlib / plain: {ours['tokens_per_s'] / plain['tokens_per_s']:.2f}x tokens per wall second, "
          f"{(ours['tokens'] / ours['cpu_seconds']) / (plain['tokens'] / plain['cpu_seconds']):.2f}x tokens per CPU "
          "second", flush=True)
    result = {"examples": len(train), "heldout": len(held), "threads": args.threads, "torch": torch.__version__,
              "mean_tokens": sum(lengths) / len(lengths), "untuned": untuned, "plain": {**plain, "heldout": plain_eval},
              "tutorlib": {**ours, "heldout": {"loss": metrics["val_loss"],
                                               "token_accuracy": metrics["val_token_accuracy"]}}}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
