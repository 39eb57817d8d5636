"""Transfer-learning strategies on the review set: linear probe, top-k layers, full fine-tuning, LLRD — test
accuracy, trainable parameters, training time and paraphrase recall@1 (forgetting), in one Markdown table.

Usage: python benchmarks/transfer.py [--train 320] [--epochs 2] [--max-length 48] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time

import torch
from torch.utils.data import TensorDataset

from tutorlib.data import load_reviews, text_collate
from tutorlib.models import MiniLMClassifier, load_encoder, load_tokenizer
from tutorlib.runtime import get_device
from tutorlib.train import Trainer
from tutorlib.transfer import count_trainable, embed_texts, layerwise_lr_groups, similarity_eval, unfreeze_top


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=320)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-length", type=int, default=48)
    p.add_argument("--test", type=int, default=None)
    p.add_argument("--device", default=None)
    args = p.parse_args()
    device = get_device(args.device)
    print(f"machine: {os.cpu_count()} CPU cores, {platform.machine()}, torch {torch.__version__}, device {device}\n")
    tok, encoder = load_tokenizer(), load_encoder().to(device)
    train, test = load_reviews("train").subset(args.train), load_reviews("test", limit=args.test)
    collate = text_collate(tok, max_length=args.max_length)
    rows = []

    t0 = time.perf_counter()
    emb_tr = embed_texts(encoder, tok, train.texts, max_length=args.max_length, device=device)
    emb_te = embed_texts(encoder, tok, test.texts, max_length=args.max_length, device=device)
    torch.manual_seed(0)
    probe = torch.nn.Linear(emb_tr.shape[1], 2)
    Trainer(probe, lr=1e-2, batch_size=64, device=device, progress=False, log=False).fit(
        TensorDataset(emb_tr, torch.tensor(train.labels)), epochs=60)
    acc = (probe.cpu()(emb_te).argmax(1) == torch.tensor(test.labels)).float().mean().item()
    sim = similarity_eval(encoder, tok, device=device)
    rows.append(("linear probe (cached embeddings)", count_trainable(probe), time.perf_counter() - t0, acc, sim["recall_at_1"]))

    for label, k, lr, llrd in (("top-1 layer", 1, 2e-4, None), ("top-2 layers", 2, 2e-4, None),
                               ("full fine-tune", None, 5e-5, None), ("full fine-tune + LLRD 0.8", None, 1e-4, 0.8)):
        torch.manual_seed(0)
        model = MiniLMClassifier(2, encoder=copy.deepcopy(encoder))
        if k is not None:
            unfreeze_top(model, k)
        opt = torch.optim.AdamW(layerwise_lr_groups(model, lr, llrd), lr=lr) if llrd else None
        trainer = Trainer(model, opt, lr=lr, batch_size=16, collate_fn=collate, device=device, progress=False, log=False)
        t0 = time.perf_counter()
        trainer.fit(train, epochs=args.epochs)
        seconds = time.perf_counter() - t0
        acc = trainer.evaluate(test)["val_accuracy"]
        rows.append((label, count_trainable(model), seconds, acc, similarity_eval(model, tok, device=device)["recall_at_1"]))
        print(f"done: {label}", flush=True)

    print(f"\n{len(train)} training reviews, {args.epochs} epochs, max length {args.max_length}, {len(test)} test reviews\n")
    print("| method | trainable params | train time (s) | test accuracy | paraphrase recall@1 |")
    print("|---|---:|---:|---:|---:|")
    for label, n, sec, acc, r1 in rows:
        print(f"| {label} | {n:,} | {sec:.1f} | {acc:.3f} | {r1:.3f} |")


if __name__ == "__main__":
    main()
