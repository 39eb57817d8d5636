"""Trainer overhead: tutorlib's Trainer against a hand-written PyTorch loop on the same model, data and seed.

Prints a Markdown table of median wall time per run, the ratio Trainer / hand loop (target ≤ 1.03) and
both final losses (target: equal). Usage: python benchmarks/trainer_overhead.py [--runs 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from tutorlib.data import load_digits, load_reviews, text_collate
from tutorlib.models import MLP, MiniLMClassifier, load_tokenizer
from tutorlib.runtime import get_device, seed_everything
from tutorlib.train import Trainer
from tutorlib.train.distributed import GlobalBatchSampler


def make_loader(dataset, batch_size, seed, collate=None):
    # The same batches the Trainer draws: its sampler, seeded per epoch.
    sampler = GlobalBatchSampler(len(dataset), batch_size, shuffle=True, seed=seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                       generator=torch.Generator().manual_seed(seed)), sampler


def hand_loop(build, dataset, epochs, batch_size, lr, device, collate=None):
    seed_everything(0)
    model = build().to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    loader, sampler = make_loader(dataset, batch_size, 0, collate)
    model.train()
    loss = None
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader:
            if isinstance(batch, dict):
                batch = {k: v.to(device) for k, v in batch.items()}
                y = batch.pop("labels")
                logits = model(**batch)
            else:
                x, y = (t.to(device) for t in batch)
                logits = model(x)
            loss = F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                raise FloatingPointError("non-finite loss")
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return float(loss.detach())


def trainer_loop(build, dataset, epochs, batch_size, lr, device, collate=None):
    seed_everything(0)
    t = Trainer(build(), lr=lr, batch_size=batch_size, device=device, collate_fn=collate, seed=0,
                progress=False, log=False)
    h = t.fit(dataset, epochs=epochs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return h.steps[-1]["loss"]


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    loss = fn(*args, **kw)
    return time.perf_counter() - t0, loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--device", default=None)
    ap.add_argument("--minilm-examples", type=int, default=256)
    args = ap.parse_args()
    device = get_device(args.device)
    tok = load_tokenizer()
    reviews = load_reviews("train", limit=args.minilm_examples)
    cases = [
        ("digits MLP (1,258 ex, 5 epochs, batch 32)", lambda: MLP(64, [128, 64], 10), load_digits("train"), 5, 32, 3e-3, None),
        (f"MiniLM head, frozen encoder ({len(reviews)} reviews, 1 epoch, batch 32)",
         lambda: MiniLMClassifier(2, freeze_encoder=True), reviews, 1, 32, 1e-3, text_collate(tok, 64)),
    ]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    print()
    print("| case | hand loop s (median) | Trainer s (median) | ratio | hand final loss | Trainer final loss |")
    print("|---|---|---|---|---|---|")
    for name, build, ds, epochs, bs, lr, collate in cases:
        # warm-up (imports, allocator, weight loading caches)
        hand_loop(build, ds, 1, bs, lr, device, collate)
        hand_t, trainer_t = [], []
        for _ in range(args.runs):  # interleave so drift in machine load hits both equally
            t, hand_loss = timed(hand_loop, build, ds, epochs, bs, lr, device, collate)
            hand_t.append(t)
            t, tr_loss = timed(trainer_loop, build, ds, epochs, bs, lr, device, collate)
            trainer_t.append(t)
        h, tr = statistics.median(hand_t), statistics.median(trainer_t)
        print(f"| {name} | {h:.3f} | {tr:.3f} | {tr / h:.3f} | {hand_loss:.6f} | {tr_loss:.6f} |", flush=True)


if __name__ == "__main__":
    main()
