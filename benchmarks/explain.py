"""Benchmark lesson 09: from-scratch explainers vs the reference libraries, cost per method, faithfulness.

Measures
1. exact Shapley (enumeration) vs ``shap`` Exact/Kernel on the 4-feature toy model: largest difference;
2. LIME from scratch vs ``lime``'s LimeTextExplainer on a toy text model: largest difference;
3. integrated gradients from scratch vs ``captum`` IntegratedGradients: largest difference;
4. shap's first explanation with numba JIT (compile) vs with JIT disabled at import (``tutorlib.explain._shap``);
5. the MiniLM review classifier fine-tuned on ``--n-train`` reviews: seconds per explanation for each
   method and budget, mean rank agreement, and the deletion AUC of each method vs random removal.

Prints a Markdown table plus the machine (CPU count, torch version, device).

    python benchmarks/explain.py --n-train 200 --epochs 1 --texts 6
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

SHAP_FIRST_CALL = r"""
import os, time, numpy as np
t = time.process_time()
{imp}
from tutorlib.models import load_tokenizer
tok = load_tokenizer()
f = lambda texts: np.tile([[0.3, 0.7]], (len(texts), 1))
expl = shap.Explainer(f, shap.maskers.Text(tok))
c = time.process_time()
expl(["The staff weren't helpful, but the room was greatly improved!"], max_evals=100, silent=True)
print(time.process_time() - c)
"""


def _first_call_cpu(jit: bool) -> float:
    imp = "import shap" if jit else "from tutorlib.explain._shap import import_shap; shap = import_shap()"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("TUTORLIB_SHAP_JIT", None)
    out = subprocess.run([sys.executable, "-c", SHAP_FIRST_CALL.format(imp=imp)], capture_output=True, text=True,
                         env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def reference_checks() -> list[tuple[str, str, str]]:
    from captum.attr import IntegratedGradients
    from lime.lime_text import LimeTextExplainer

    from tutorlib.explain import (exact_shapley, integrated_gradients, lime_from_scratch, shap_exact, shap_kernel,
                                  toy_background, toy_model)

    rows = []
    bg = toy_background(50)
    x = np.array([1.5, -0.5, 2.0, 3.0])
    t = time.perf_counter()
    phi = exact_shapley(toy_model, x, bg)
    ours_s = time.perf_counter() - t
    d_exact = np.abs(phi - shap_exact(toy_model, x, bg)).max()
    d_kernel = np.abs(phi - shap_kernel(toy_model, x, bg, nsamples=100)).max()
    rows.append(("exact Shapley (4 features, 50 background rows) vs shap Exact / Kernel",
                 f"max abs diff {d_exact:.1e} / {d_kernel:.1e}", f"{ours_s * 1e3:.1f} ms (ours)"))

    words = "the food was great but the service awful".split()
    weight = {"great": 2.0, "awful": -1.5, "food": 0.3}

    def clf(texts):
        s = np.array([sum(weight.get(w, 0.0) for w in t.split()) for t in texts])
        p = 1 / (1 + np.exp(-s))
        return np.stack([1 - p, p], 1)

    exp = LimeTextExplainer(feature_selection="none", split_expression=lambda s: s.split(), bow=False,
                            mask_string="[MASK]", random_state=3).explain_instance(
        " ".join(words), clf, labels=(1,), num_features=len(words), num_samples=300)
    ref = np.zeros(len(words))
    for j, w in exp.local_exp[1]:
        ref[j] = w
    ours, _ = lime_from_scratch(lambda M: clf([" ".join(w if k else "[MASK]" for w, k in zip(words, r)) for r in M]),
                                len(words), num_samples=300, seed=3)
    rows.append(("LIME from scratch vs lime.LimeTextExplainer (same seed, 300 samples)",
                 f"max abs diff {np.abs(ours - ref).max():.1e}", "-"))

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3)).double()
    xi, bi = torch.randn(16, 8, dtype=torch.float64), torch.zeros(16, 8, dtype=torch.float64)
    a, _ = integrated_gradients(mlp, xi, bi, target=1, steps=50, method="gausslegendre")
    c = IntegratedGradients(mlp).attribute(xi, bi, target=1, n_steps=50, method="gausslegendre")
    rows.append(("integrated gradients from scratch vs captum (MLP, 50 steps)", f"max abs diff {(a - c).abs().max():.1e}", "-"))

    jit, nojit = _first_call_cpu(True), _first_call_cpu(False)
    rows.append(("shap first text explanation, CPU s: numba JIT vs JIT off at import", f"{jit:.2f} s vs {nojit:.2f} s",
                 "compile time saved"))
    return rows


def model_benchmarks(n_train: int, epochs: int, n_texts: int, budgets: dict[str, dict]) -> list[tuple[str, str, str]]:
    from tutorlib.data import load_reviews
    from tutorlib.explain import explain_text, faithfulness_table, mean_agreement, train_review_classifier

    rows = []
    t, c = time.perf_counter(), time.process_time()
    model, tok, history = train_review_classifier(n_train, epochs=epochs, progress=False, log=False)
    rows.append((f"fine-tune MiniLM on {n_train} reviews × {epochs} epoch(s)",
                 f"val accuracy {history.last('val_accuracy'):.1%}",
                 f"{time.process_time() - c:.0f} s CPU, {time.perf_counter() - t:.0f} s wall"))
    texts = [t for t in load_reviews("test").texts if len(tok(t)["input_ids"]) <= 32][:n_texts]
    methods = {"shap": ("shap", budgets["shap"]), "lime": ("lime", budgets["lime"]), "ig": ("ig", budgets["ig"]),
               "attention": ("attention", {}), "attention (last layer)": ("attention", {"mode": "last"})}
    many: dict[str, list] = {m: [] for m in methods}
    for name, (method, kw) in methods.items():
        wall, cpu = 0.0, 0.0
        for text in texts:
            t0, c0 = time.perf_counter(), time.process_time()
            many[name].append(explain_text(model, tok, text, method=method, **kw))
            wall, cpu = wall + time.perf_counter() - t0, cpu + time.process_time() - c0
        budget = ", ".join(f"{k}={v}" for k, v in kw.items() if k != "mode") or "1 forward pass"
        rows.append((f"{name}: time per explanation ({budget})", f"{cpu / len(texts):.2f} s CPU",
                     f"{wall / len(texts):.2f} s wall, {torch.get_num_threads()} thread(s), {len(texts)} reviews"))
    names, rho = mean_agreement({k: v for k, v in many.items() if k != "attention (last layer)"})
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            rows.append((f"agreement {names[i]} vs {names[j]} (Spearman ρ of abs scores)", f"{rho[i, j]:.2f}",
                         f"mean over {len(texts)} reviews"))
    table = faithfulness_table(model, tok, many, n_random=20)
    for m, r in sorted(table.items(), key=lambda kv: kv[1]["auc"]):
        rows.append((f"deletion AUC: {m} (lower = more faithful)", f"{r['auc']:.3f}",
                     f"drop after 20 % removed {r['drop']:.3f}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--texts", type=int, default=6)
    ap.add_argument("--shap-evals", type=int, default=200)
    ap.add_argument("--lime-samples", type=int, default=300)
    ap.add_argument("--ig-steps", type=int, default=32)
    ap.add_argument("--skip-model", action="store_true", help="only the from-scratch vs library checks")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tutorlib.runtime import setup

    device = setup(seed=0)
    rows = reference_checks()
    if not args.skip_model:
        budgets = {"shap": {"max_evals": args.shap_evals}, "lime": {"num_samples": args.lime_samples},
                   "ig": {"steps": args.ig_steps}}
        rows += model_benchmarks(args.n_train, args.epochs, args.texts, budgets)
    print(f"\nmachine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"device {device}, torch threads {torch.get_num_threads()}\n")
    print("| measurement | result | note |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
