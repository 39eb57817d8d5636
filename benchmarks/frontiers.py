"""Benchmark lesson 13: the key measured figures of the frontier techniques.

Measures
1. attention time and peak tensor memory vs sequence length: full dense, sliding window (dense mask and
   block-sparse), BigBird block-sparse, torch's fused SDPA;
2. per-sample gradients: ``torch.func`` vmap vs a loop (time, largest difference);
3. the RDP accountant against Opacus' reference value (σ 1.5, q 0.04, 2,250 steps, δ 1e-5 → ε 7.32911);
4. MoE (4 experts, top-1, balancing loss) vs the dense GPT of equal compute: validation loss after
   ``--lm-steps`` steps, parameters, wall time, busiest/idlest expert share;
5. digits ensembles (``--n-small`` training images): best single, vote, average, stacking;
6. DP-SGD on digits: ε and test accuracy for several noise multipliers.

Prints Markdown tables plus the machine (CPU count, torch version).

    python benchmarks/frontiers.py --lm-steps 300 --max-t 4096
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch.utils.data import TensorDataset


def _table(headers: list[str], rows: list[list[object]]) -> None:
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for r in rows:
        print("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-t", type=int, default=4096)
    ap.add_argument("--lm-steps", type=int, default=300)
    ap.add_argument("--n-small", type=int, default=400)
    ap.add_argument("--dp-steps", type=int, default=600)
    args = ap.parse_args()

    from tutorlib.data import code_corpus, load_digits
    from tutorlib.frontiers import (dense_gpt, dp_epsilon, dp_sgd_step_fn, fit_ensemble, lm_step_fn, measure_attention,
                                    moe_gpt, per_sample_grads, per_sample_grads_loop)
from tutorlib.measure import time_call
    from tutorlib.models import MLP, ByteTokenizer, GPTConfig
    from tutorlib.train import Trainer

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}\n")

    print("## 1. attention vs sequence length (2 heads, d=32, causal, window = block = 64)\n")
    lens = [T for T in (256, 512, 1024, 2048, 4096, 8192) if T <= args.max_t]
    rows = measure_attention(lens, window=64, block=64, repeats=3)
    _table(["T", "variant", "ms", "peak MiB", "pairs kept"],
           [[r["T"], r["variant"], 1000 * r["seconds"], r["peak_mib"], f"{r['density']:.1%}"] for r in rows])

    print("## 2. per-sample gradients, MLP 64-64-10, batch 128\n")
    x, y = load_digits("train", flat=True).tensors
    torch.manual_seed(0)
    net = MLP(64, [64], 10)
    xb, yb = x[:128], y[:128]
    fast, slow = per_sample_grads(net, xb, yb), per_sample_grads_loop(net, xb, yb)
    diff = max(float((fast[n] - slow[n]).abs().max()) for n in fast)
    tv = time_call(lambda: per_sample_grads(net, xb, yb), 3, stat="min")
    tl = time_call(lambda: per_sample_grads_loop(net, xb, yb), 1, stat="min")
    _table(["method", "ms", "max diff"], [["vmap(grad)", 1000 * tv, diff], ["loop", 1000 * tl, 0.0]])

    print("## 3. RDP accountant vs Opacus' reference value\n")
    eps = dp_epsilon(0.04, 1.5, int(90 / 0.04), 1e-5)
    _table(["ours", "opacus", "difference"], [[eps, 7.32911117143, abs(eps - 7.32911117143)]])

    print(f"## 4. MoE vs dense GPT of equal compute ({args.lm_steps} steps, batch 16, T 64)\n")
    ids = torch.tensor(ByteTokenizer().encode(code_corpus(max(200_000, args.lm_steps * 16 * 65 + 10_000))))
    seqs = ids[: (len(ids) // 65) * 65].view(-1, 65)
    val, train = seqs[:64], seqs[64:64 + args.lm_steps * 16]
    cfg = GPTConfig(vocab_size=ByteTokenizer.vocab_size, block_size=64, n_layer=2, n_head=2, d_model=64)
    lm_rows = []
    for name, model, aux in [("MoE 4x top-1, balance 0.1", moe_gpt(cfg, 4, 1, d_hidden=128), 0.1),
                             ("MoE 4x top-1, no balance", moe_gpt(cfg, 4, 1, d_hidden=128), 0.0),
                             ("dense, equal compute", dense_gpt(cfg, 128), 0.0)]:
        log: list = []
        t0 = time.perf_counter()
        Trainer(model, lr=3e-3, batch_size=16, step_fn=lm_step_fn(aux, log), metrics=(), progress=False,
                log=False).fit(TensorDataset(train))
        sec = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            vl = float(model.loss(val))
        share = "-"
        if "counts" in log[-1]:
            c = torch.stack([e["counts"] for e in log[-20:]]).float().sum(0)
            c = c / c.sum(1, keepdim=True)
            share = f"{c.max():.2f} / {c.min():.2f}"
        lm_rows.append([name, vl, sum(p.numel() for p in model.parameters()), sec, share])
    _table(["model", "val loss", "params", "seconds", "busiest / idlest expert"], lm_rows)

    print(f"## 5. digits ensembles ({args.n_small} training images)\n")
    xs, ys = load_digits("train", flat=True, limit=args.n_small).tensors
    xt, yt = load_digits("test", flat=True).tensors
    r = fit_ensemble(xs.numpy(), ys.numpy(), xt.numpy(), yt.numpy())
    _table(["model", "test accuracy"], [[n, r[n]] for n in r] + [["(best single)", r.best_single]])

    print(f"## 6. DP-SGD on digits ({args.dp_steps} steps, q = 32/N, C = 1)\n")
    xf, yf = load_digits("test", flat=True).tensors
    q = 32 / len(x)
    dp_rows = []
    for sigma in (0.0, 0.6, 1.0, 2.0, 4.0):
        torch.manual_seed(0)
        m = MLP(64, [64], 10)
        Trainer(m, step_fn=dp_sgd_step_fn(x, y, q, 1.0, sigma, lr=0.5), manual_optimization=True, batch_size=1,
                metrics=(), progress=False, log=False).fit(TensorDataset(torch.arange(args.dp_steps)))
        with torch.no_grad():
            acc = float((m(xf).argmax(1) == yf).float().mean())
        e = dp_epsilon(q, sigma, args.dp_steps, orders=range(2, 64)) if sigma else float("inf")
        dp_rows.append([sigma, e, acc])
    _table(["sigma", "epsilon (delta 1e-5)", "test accuracy"], dp_rows)


if __name__ == "__main__":
    main()
