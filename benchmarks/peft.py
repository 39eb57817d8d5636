"""Lesson 06 targets: LoRA ≤ 1 % trainable parameters, accuracy within 1 point of full fine-tuning, lower peak memory;
our LoRA == peft LoRA on a tiny config; merged LoRA adds no latency.

Prints Markdown tables (and the machine). Run from the repository root:

    python benchmarks/peft.py                       # the table: every method, full review data, 3 epochs, seeds 0 1 2
    python benchmarks/peft.py --methods full lora   # only the target (about 30 min on 2 CPU cores)
    python benchmarks/peft.py --epochs 1 --limit 300 --methods head full lora   # quicker
    python benchmarks/peft.py --sweep ia3 prefix    # learning-rate sweeps behind DEFAULT_LR
    python benchmarks/peft.py --json results.json   # also write the numbers
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
# This file is called peft.py: when run as a script its folder is sys.path[0] and would shadow the peft library.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import torch  # noqa: E402
from torch import nn  # noqa: E402

from tutorlib.measure import median_ms  # noqa: E402


def machine() -> str:
    dev = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
            f"{torch.get_num_threads()}, torch {torch.__version__}, device {dev}, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def equivalence() -> str:
    """Our LoRA vs peft LoRA on a tiny BERT with the same weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import BertConfig, BertModel

    from tutorlib.models import count_parameters
    from tutorlib.peft import inject_lora, lora_layers

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64)
    base = BertModel(cfg).eval()
    rows = ["| targets | r | trainable (ours) | trainable (peft) | max abs diff of outputs |", "|---|---|---|---|---|"]
    ids = torch.randint(0, 100, (4, 9))
    mask = torch.ones_like(ids)
    for targets, r in ((["query", "value"], 4), (["query", "key", "value", "dense"], 8)):
        ours = copy.deepcopy(base)
        inject_lora(ours, targets, r=r, alpha=2 * r)
        ref = get_peft_model(copy.deepcopy(base), LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets)).eval()
        g = torch.Generator().manual_seed(1)
        for name, layer in lora_layers(ours):
            layer.lora_B.weight.data.normal_(generator=g)
            twin = ref.base_model.model.get_submodule(name)
            twin.lora_A["default"].weight.data.copy_(layer.lora_A.weight)
            twin.lora_B["default"].weight.data.copy_(layer.lora_B.weight)
        with torch.no_grad():
            diff = (ours(input_ids=ids, attention_mask=mask).last_hidden_state
                    - ref(input_ids=ids, attention_mask=mask).last_hidden_state).abs().max().item()
        rows.append(f"| {', '.join(targets)} | {r} | {count_parameters(ours).trainable:,} | "
                    f"{ref.get_nb_trainable_parameters()[0]:,} | {diff:.2e} |")
    return "\n".join(rows)


def latency(repeats: int) -> str:
    """Inference latency of MiniLM: plain, LoRA unmerged, LoRA merged (ours), peft merge_and_unload."""
    from peft import LoraConfig, get_peft_model

    from tutorlib.data import load_reviews, text_collate
    from tutorlib.models import MiniLMClassifier, load_encoder, load_tokenizer
    from tutorlib.peft import inject_lora, lora_layers, merge_lora

    enc = load_encoder()
    batch = text_collate(load_tokenizer(), 64)(list(load_reviews("test", limit=32)))
    batch.pop("labels")
    torch.manual_seed(0)
    plain = MiniLMClassifier(2, encoder=copy.deepcopy(enc)).eval()
    ours = copy.deepcopy(plain)
    inject_lora(ours, ["query", "key", "value", "dense"], r=8, trainable=("head",))
    for _, layer in lora_layers(ours):
        nn.init.normal_(layer.lora_B.weight, std=0.02)
    ours.eval()
    peft_model = get_peft_model(copy.deepcopy(plain), LoraConfig(r=8, lora_alpha=16,
                                                                 target_modules=["query", "key", "value", "dense"]))
    peft_model.eval()
    rows = ["| model (MiniLM, batch 32, LoRA r=8 on query/key/value/dense) | median ms | vs plain |", "|---|---|---|"]
    with torch.inference_mode():
        base_ms = median_ms(lambda: plain(**batch), repeats)
        unmerged = median_ms(lambda: ours(**batch), repeats)
        out_unmerged = ours(**batch)
        merge_lora(ours)
        merged = median_ms(lambda: ours(**batch), repeats)
        diff = (ours(**batch) - out_unmerged).abs().max().item()
        peft_unmerged = median_ms(lambda: peft_model(**batch), repeats)
        unloaded = peft_model.merge_and_unload()
        peft_merged = median_ms(lambda: unloaded(**batch), repeats)
    for name, ms in (("plain MiniLM", base_ms), ("LoRA (ours), unmerged", unmerged), ("LoRA (ours), merged", merged),
                     ("peft LoRA, unmerged", peft_unmerged), ("peft LoRA, merge_and_unload", peft_merged)):
        rows.append(f"| {name} | {ms:.1f} | {ms / base_ms:.2f}× |")
    rows.append(f"\nmerged vs unmerged outputs (ours): max abs difference {diff:.2e}")
    return "\n".join(rows)


def table(methods, epochs: int, limit: int | None, seeds: list[int], batch_size: int, as_json: str | None) -> str:
    from tutorlib.data import load_reviews
    from tutorlib.models import load_encoder
    from tutorlib.peft import compare_methods, results_table

    train = load_reviews("train", limit=limit)
    val, test = load_reviews("val"), load_reviews("test")
    enc = load_encoder()
    by_seed = []
    for seed in seeds:
        res = compare_methods(methods, train, val, test, epochs=epochs, batch_size=batch_size, encoder=enc, seed=seed,
                              progress=True, on_result=lambda r: print(f"  {r.label}: val {100 * r.val_accuracy:.1f} "
                                                                       f"test {100 * r.test_accuracy:.1f} "
                                                                       f"({r.seconds_per_epoch:.0f} s/epoch)",
                                                                       file=sys.stderr, flush=True))
        by_seed.append(res)
    out = [f"{len(train)} training reviews, {len(val)} validation, {len(test)} test; {epochs} epoch(s), batch "
           f"{batch_size}, max length 64, AdamW; seeds {seeds}"]
    if len(seeds) == 1:
        out.append(results_table(by_seed[0]))
    else:
        head = "| method | trainable % | peak train MiB | s / epoch | test acc (mean ± sd over seeds) | val acc (mean) |"
        out += [head, "|---|---|---|---|---|---|"]
        for i, r in enumerate(by_seed[0]):
            accs = [100 * s[i].test_accuracy for s in by_seed]
            vals = [100 * s[i].val_accuracy for s in by_seed]
            secs = statistics.mean(s[i].seconds_per_epoch for s in by_seed)
            out.append(f"| {r.label} | {r.percent:.3f} | {r.peak_bytes / 2**20:.0f} | {secs:.1f} | "
                       f"{statistics.mean(accs):.1f} ± {statistics.pstdev(accs):.1f} | {statistics.mean(vals):.1f} |")
    first = {r.method: r for r in by_seed[0]}
    if "lora" in first and "full" in first:
        acc = {m: statistics.mean(100 * s[[r.method for r in s].index(m)].test_accuracy for s in by_seed)
               for m in ("lora", "full")}
        lo, fu = first["lora"], first["full"]
        out.append(f"\ntargets: LoRA trainable {lo.percent:.3f} % (≤ 1 %: {'yes' if lo.percent <= 1 else 'NO'}); "
                   f"LoRA test accuracy {acc['lora']:.1f} vs full {acc['full']:.1f} "
                   f"(within 1 point: {'yes' if acc['lora'] >= acc['full'] - 1 else 'NO'}); peak memory "
                   f"{lo.peak_bytes / 2**20:.0f} vs {fu.peak_bytes / 2**20:.0f} MiB "
                   f"(lower: {'yes' if lo.peak_bytes < fu.peak_bytes else 'NO'})")
    if as_json:
        with open(as_json, "w") as fh:
            json.dump([[r.to_dict() for r in s] for s in by_seed], fh, indent=1)
    return "\n".join(out)


def sweep(methods, lrs: list[float], epochs: int, limit: int) -> str:
    from tutorlib.data import load_reviews
    from tutorlib.models import load_encoder
    from tutorlib.peft import compare_methods

    train, val = load_reviews("train", limit=limit), load_reviews("val")
    enc = load_encoder()
    rows = [f"learning-rate sweep: {len(train)} training reviews, {epochs} epoch(s), validation accuracy %",
            "| method | " + " | ".join(f"{lr:g}" for lr in lrs) + " |", "|---|" + "---|" * len(lrs)]
    for m in methods:
        accs = []
        for lr in lrs:
            res = compare_methods([m], train, val, epochs=epochs, lr={m: lr}, encoder=enc, progress=False)
            accs.append(100 * res[0].val_accuracy)
            print(f"  {m} lr {lr:g}: {accs[-1]:.1f}", file=sys.stderr, flush=True)
        rows.append(f"| {m} | " + " | ".join(f"{a:.1f}" for a in accs) + " |")
    return "\n".join(rows)


def main() -> None:
    from tutorlib.peft import METHODS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="training reviews to use (default all 1,120)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="one run per seed; the target compares the means (240 test reviews: one seed is noise)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=20, help="latency repeats")
    ap.add_argument("--skip-table", action="store_true")
    ap.add_argument("--sweep", nargs="*", metavar="METHOD", help="learning-rate sweep for these methods instead")
    ap.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3, 1e-2, 3e-2])
    ap.add_argument("--json", help="write the table's numbers to this file")
    args = ap.parse_args()
    print(machine(), flush=True)
    if args.sweep is not None:
        print(sweep(args.sweep or list(METHODS), args.lrs, args.epochs, args.limit or 400), flush=True)
        return
    print("\n## Our LoRA vs peft (tiny BERT, same weights)\n" + equivalence(), flush=True)
    print("\n## Inference latency\n" + latency(args.repeats), flush=True)
    if not args.skip_table:
        print("\n## Fine-tuning methods on the review classifier\n"
              + table(args.methods, args.epochs, args.limit, args.seeds, args.batch_size, args.json), flush=True)


if __name__ == "__main__":
    main()
