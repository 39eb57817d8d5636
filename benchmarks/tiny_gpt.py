"""The tiny GPT's figures (lessons 10–12): TinyGPT pretraining (perplexity, time per step, MFU on a GPU), from-scratch decoding
(agreement with transformers' generate and speed), completion-only SFT and memory recall latency.

Prints Markdown tables (and the machine). Run from the repository root:

    python benchmarks/tiny_gpt.py                 # pretrain 300 steps of the lesson's full-size TinyGPT
    python benchmarks/tiny_gpt.py --steps 50      # quicker
    python benchmarks/tiny_gpt.py --json out.json # also write the numbers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402


def machine() -> str:
    dev = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
            f"{torch.get_num_threads()}, torch {torch.__version__}, device {dev}, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def bench_pretrain(steps: int, device: torch.device) -> dict:
    from tutorlib.data import code_corpus
    from tutorlib.llm import pretrain_gpt
    from tutorlib.models import GPTConfig

    cfg = GPTConfig(block_size=128, n_layer=4, n_head=4, d_model=128)
    batch = 16
    res = pretrain_gpt(code_corpus(3_000_000), cfg, steps=steps, batch_size=batch, lr=3e-3,
                       eval_every=max(1, steps // 3), sample_chars=120, device=device)
    n = sum(p.numel() for p in res.model.parameters())
    tokens = steps * batch * cfg.block_size
    flops = 6 * n * tokens + 12 * cfg.n_layer * cfg.d_model * cfg.block_size * tokens  # params + attention
    out = {"steps": steps, "parameters": n, "seconds": res.seconds, "s_per_step": res.seconds / steps,
           "tokens_per_s": tokens / res.seconds, "val_ppl_start": res.evals[0]["val_ppl"],
           "val_ppl_end": res.final_val_ppl, "sample": res.evals[-1]["sample"], "model": res.model}
    if device.type == "cuda":
        peak = {"H100": 989e12, "H200": 989e12, "A100": 312e12}.get(
            next((k for k in ("H100", "H200", "A100") if k in torch.cuda.get_device_name(0)), ""), None)
        out["mfu_fp32_vs_bf16_peak"] = flops / res.seconds / peak if peak else None
    return out


def bench_decoding(model: torch.nn.Module, n_new: int = 60) -> list[dict]:
    from tutorlib.llm import beam_search, greedy, sample, to_gpt2
    from tutorlib.models import ByteTokenizer

    model = model.cpu().eval()
    hf = to_gpt2(model)
    tok = ByteTokenizer()
    ids = torch.tensor([tok.encode("def __init__(self")])
    n_new = min(n_new, model.cfg.block_size - ids.shape[1])
    rows = []
    cases = {
        "greedy": (lambda: greedy(model, ids, n_new), dict(do_sample=False)),
        "beam 4": (lambda: beam_search(model, ids, n_new, num_beams=4), dict(do_sample=False, num_beams=4)),
        "sample T=0.8 top-k 30 top-p 0.9": (lambda: sample(model, ids, n_new, temperature=0.8, top_k=30, top_p=0.9),
                                            dict(do_sample=True, temperature=0.8, top_k=30, top_p=0.9)),
        "greedy, repetition penalty 1.3": (lambda: greedy(model, ids, n_new, repetition_penalty=1.3),
                                           dict(do_sample=False, repetition_penalty=1.3)),
    }
    for name, (ours, kw) in cases.items():
        torch.manual_seed(0)
        t0 = time.perf_counter(); a = ours(); t_ours = time.perf_counter() - t0
        torch.manual_seed(0)
        t0 = time.perf_counter(); b = hf.generate(ids, max_new_tokens=n_new, eos_token_id=None, **kw)
        t_hf = time.perf_counter() - t0
        rows.append({"strategy": name, "equal": bool(torch.equal(a, b)), "ours_ms_per_token": 1000 * t_ours / n_new,
                     "hf_ms_per_token": 1000 * t_hf / n_new})
    return rows


def bench_recall(n: int = 2000) -> dict:
    from tutorlib.llm import LongTermMemory, bag_of_words_embedder

    mem = LongTermMemory(embed=bag_of_words_embedder(384))
    t0 = time.perf_counter()
    for i in range(n):
        mem.add("user", f"message {i} about topic {i % 37} and item {i % 11}")
    t_add = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(20):
        mem.recall("topic 5 and item 3", k=3)
    return {"turns": n, "add_ms": 1000 * t_add, "recall_ms": 1000 * (time.perf_counter() - t0) / 20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="pretraining steps (default 300)")
    ap.add_argument("--device", default=None, help="cpu, cuda (default: best available)")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()
    from tutorlib.runtime import get_device

    device = get_device(args.device)
    print(machine())
    pre = bench_pretrain(args.steps, device)
    print("\n| pretraining (TinyGPT 4×128, block 128, batch 16) | value |\n|---|---|")
    print(f"| parameters | {pre['parameters']:,} |\n| steps | {pre['steps']} |\n| seconds | {pre['seconds']:.1f} |")
    print(f"| seconds / step | {pre['s_per_step']:.3f} |\n| tokens / second | {pre['tokens_per_s']:,.0f} |")
    print(f"| validation perplexity before → after | {pre['val_ppl_start']:.1f} → {pre['val_ppl_end']:.2f} |")
    if pre.get("mfu_fp32_vs_bf16_peak") is not None:
        print(f"| MFU (fp32 run vs the GPU's dense bf16 peak) | {100 * pre['mfu_fp32_vs_bf16_peak']:.2f} % |")
    print(f"\nsample after {pre['steps']} steps:\n{pre['sample']}\n")
    dec = bench_decoding(pre.pop("model"))
    print("| strategy | tokens equal to transformers | ours ms/token (no KV cache) | transformers ms/token |")
    print("|---|---|---|---|")
    for r in dec:
        print(f"| {r['strategy']} | {r['equal']} | {r['ours_ms_per_token']:.2f} | {r['hf_ms_per_token']:.2f} |")
    rec = bench_recall()
    print(f"\n| long-term memory ({rec['turns']} turns, SQLite, 384-d) | ms |\n|---|---|")
    print(f"| add one turn | {rec['add_ms']:.3f} |\n| recall top-3 | {rec['recall_ms']:.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine(), "pretrain": pre, "decoding": dec, "recall": rec}, fh, indent=1)


if __name__ == "__main__":
    main()
