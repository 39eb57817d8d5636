"""Benchmark of the bundled LLM's loader and generation speed (``tutorlib.models.load_llm``).

Measures, on the CPU unless ``--device``:
- cold load: a fresh, empty ``TUTORLIB_CACHE`` (temporary folder): the GGUF file is dequantized by
  ``transformers``, rebuilt as a plain model, saved as safetensors with its manifest, then loaded;
- cached load: ``load_llm()`` again, ``--repeats`` times (median), as a new process does it: checking
  every cached file's size and SHA-256 against the manifest (also timed on its own), then loading; and
  once more in the same process, where files already verified (and unchanged since) are not re-hashed;
- the parameter count;
- ``generate`` speed: greedy, exactly 64 new tokens (``min_new_tokens=64``) after a one-question chat
  prompt, batch 1 and batch 8 (left-padded, as ``tutorlib generate --data`` does), median of ``--repeats``.

Python's module imports (torch, transformers, the Llama classes) happen before any timing.

Usage::

    python benchmarks/llm_load.py                 # about two minutes on 2 CPU cores
    python benchmarks/llm_load.py --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time

import torch


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the cached load and of generate")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="device for the model (default cpu)")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per answer (default 64)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import transformers
    from transformers import LlamaForCausalLM  # noqa: F401  (import cost kept out of the timings)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from tutorlib.models import bundled_gguf, chat_input_ids, llm_path, load_llm
    from tutorlib.models import llm as llm_mod

    gguf = bundled_gguf()
    cache = tempfile.mkdtemp(prefix="tutorlib-bench-cache-")
    old = os.environ.get("TUTORLIB_CACHE")
    os.environ["TUTORLIB_CACHE"] = cache
    try:
        t0 = time.perf_counter()
        model, tok = load_llm(device=args.device)
        cold = time.perf_counter() - t0
        del model
        # as a new process would: forget which files this process already verified
        cached = _median_time(lambda: (llm_mod._VERIFIED.clear(), load_llm(device=args.device)), args.repeats)
        again = _median_time(lambda: load_llm(device=args.device), args.repeats)
        folder = llm_path()
        verify = _median_time(lambda: (llm_mod._VERIFIED.clear(), llm_mod._cache_problem(llm_mod.Path(folder))),
                              args.repeats)
        size_mib = sum(p.stat().st_size for p in llm_mod.Path(folder).iterdir()) / 2**20
        model, tok = load_llm(device=args.device)
        n_params = sum(p.numel() for p in model.parameters())

        question = [{"role": "user", "content": "Explain in a few sentences why the sky is blue."}]
        ids = chat_input_ids(tok, question).to(model.device)
        n = args.new_tokens

        @torch.no_grad()
        def gen_one() -> None:
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
            assert out.shape[1] - ids.shape[1] == n

        batch = ids.repeat(8, 1)

        @torch.no_grad()
        def gen_batch() -> None:
            out = model.generate(batch, attention_mask=torch.ones_like(batch), max_new_tokens=n, min_new_tokens=n,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
            assert out.shape[1] - batch.shape[1] == n

        gen_one()  # warm-up
        t1 = _median_time(gen_one, args.repeats)
        t8 = _median_time(gen_batch, args.repeats)
        answer = tok.decode(model.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1]:],
                            skip_special_tokens=True)
    finally:
        if old is None:
            os.environ.pop("TUTORLIB_CACHE", None)
        else:
            os.environ["TUTORLIB_CACHE"] = old
        shutil.rmtree(cache, ignore_errors=True)

    print(f"bundled LLM: {gguf.name} ({gguf.stat().st_size / 2**20:.0f} MiB GGUF) -> {size_mib:.0f} MiB cached safetensors")
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__} with {torch.get_num_threads()} threads, transformers {transformers.__version__}, "
          f"device {args.device}")
    rows = [
        ("cold load (dequantize GGUF + write cache + load)", f"{cold:.1f} s"),
        (f"cached load (median of {args.repeats})", f"{cached:.2f} s"),
        ("  of which: verifying the cache (sizes + SHA-256)", f"{verify:.2f} s"),
        ("cached load again in the same process (no re-hash)", f"{again:.2f} s"),
        ("parameters", f"{n_params:,}"),
        (f"generate, greedy, batch 1, {n} new tokens", f"{t1:.2f} s = {n / t1:.1f} tokens/s"),
        (f"generate, greedy, batch 8, {n} new tokens each", f"{t8:.2f} s = {8 * n / t8:.1f} tokens/s"),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measurement':<{width}}  value")
    print(f"{'-' * width}  {'-' * 28}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"\nsample answer: {answer!r}")


if __name__ == "__main__":
    main()
