"""Benchmark for lesson 01: cost of the from-scratch optimizers vs torch.optim, and what each reaches on the digits CNN.

Prints a Markdown table: for each optimizer, the mean time of one ``optimizer.step()`` on the SmallCNN's
parameters (after a backward pass), and the validation accuracy after a fixed number of epochs through the
Trainer (same seed and data for every row). Run: ``python benchmarks/optim.py [--epochs N] [--steps N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from tutorlib.data import load_digits
from tutorlib.models import SmallCNN
from tutorlib.optim import LAMB, Adam, SGDMomentum
from tutorlib.optim.compare import compare_optimizers
from tutorlib.runtime import get_device, seed_everything

ROWS = {
    "torch SGD+Nesterov": lambda ps: torch.optim.SGD(ps, lr=0.03, momentum=0.9, nesterov=True),
    "tutorlib SGDMomentum (Nesterov)": lambda ps: SGDMomentum(ps, lr=0.03, momentum=0.9, nesterov=True),
    "torch Adam": lambda ps: torch.optim.Adam(ps, lr=3e-3),
    "tutorlib Adam": lambda ps: Adam(ps, lr=3e-3),
    "torch AdamW (wd 0.01)": lambda ps: torch.optim.AdamW(ps, lr=3e-3, weight_decay=0.01),
    "tutorlib Adam (decoupled, wd 0.01)": lambda ps: Adam(ps, lr=3e-3, weight_decay=0.01, decoupled=True),
    "tutorlib LAMB (wd 0.01)": lambda ps: LAMB(ps, lr=1e-2, weight_decay=0.01),
}


def step_time(make, steps: int) -> float:
    """Mean seconds per optimizer.step() on the SmallCNN (gradients fixed, so only the update is timed)."""
    seed_everything(0)
    model = SmallCNN()
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt = make(model.parameters())
    for _ in range(3):
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    train, val = load_digits("train"), load_digits("val")
    runs = compare_optimizers(lambda: SmallCNN(width=16), ROWS, train, val, epochs=args.epochs, progress=False)
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"device {get_device()}, threads {torch.get_num_threads()}")
    print(f"\n| optimizer | ms per step (SmallCNN, {sum(p.numel() for p in SmallCNN().parameters()):,} params) | "
          f"val accuracy after {args.epochs} epochs | final train loss |")
    print("|---|---|---|---|")
    for name, make in ROWS.items():
        h = runs[name]
        print(f"| {name} | {1000 * step_time(make, args.steps):.3f} | {h['val_accuracy'][-1]:.3f} | "
              f"{h['train_loss'][-1]:.4f} |")


if __name__ == "__main__":
    main()
