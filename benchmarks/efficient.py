"""Efficient-training techniques measured with tutorlib.efficient: throughput, peak memory and MFU of one
Trainer optimizer step per technique, on the tiny GPT and on the MiniLM fine-tune; plus activation memory
with and without checkpointing and the MFU of the tiny GPT.

Prints the machine and one Markdown table per model. On a CUDA GPU, fp16 + GradScaler is added, memory is the
CUDA allocator's peak and MFU uses the GPU's data-sheet peak; on a CPU memory is the process RSS and MFU is
relative to a measured fp32 matmul. Usage:
    python benchmarks/efficient.py [--steps 3] [--gpt-batch 16] [--minilm-batch 16] [--no-compile] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform

import torch

from tutorlib.data import load_reviews, text_collate
from tutorlib.efficient import (DEFAULT_TECHNIQUES, Technique, benchmark_techniques, device_peak_flops,
                                enable_activation_checkpointing, lm_dataset, lm_loss, matmul_peak_flops,
                                saved_activation_bytes, techniques_table, transformer_train_flops)
from tutorlib.models import GPTConfig, MiniLMClassifier, TinyGPT, count_parameters, load_tokenizer
from tutorlib.runtime import get_device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--gpt-batch", type=int, default=16)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--minilm-batch", type=int, default=16)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it takes minutes on a CPU)")
    p.add_argument("--skip-minilm", action="store_true")
    p.add_argument("--device", default=None)
    args = p.parse_args()
    device = get_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} CPU cores, {name}, torch {torch.__version__}, device {device}\n")

    techniques = [t for t in DEFAULT_TECHNIQUES if not (t.compile and args.no_compile)]
    if device.type == "cuda":
        techniques.insert(2, Technique("fp16 autocast + GradScaler", precision="fp16"))

    cfg = GPTConfig(block_size=args.block, n_layer=4, n_head=4, d_model=128)
    data = lm_dataset(block_size=args.block, n_sequences=max(64, args.gpt_batch))
    rows = benchmark_techniques(lambda: TinyGPT(cfg), data, techniques, batch_size=args.gpt_batch, steps=args.steps,
                                warmup=1, device=device, lr=3e-3, loss_fn=lm_loss, tokens_per_sample=args.block)
    print(f"### Tiny GPT ({count_parameters(TinyGPT(cfg)).total:,} parameters), batch {args.gpt_batch} x {args.block} tokens\n")
    print(techniques_table(rows))
    peak = device_peak_flops(device, torch.bfloat16)
    source = "data sheet, bf16"
    if peak is None:
        peak, source = matmul_peak_flops(device, torch.float32, n=1024, repeats=10), "measured fp32 1024x1024 matmul"
    n = count_parameters(TinyGPT(cfg)).non_embedding
    flops = transformer_train_flops(n, args.gpt_batch * args.block, n_layer=4, d_model=128, seq_len=args.block)
    print(f"\nMFU (6N + attention FLOPs, peak {peak / 1e12:.3g} TFLOP/s from {source}): "
          + ", ".join(f"{r.name} {flops / r.seconds_per_step / peak:.1%}" for r in rows))

    model = TinyGPT(cfg).train()
    x, y = (t.to(device) for t in data[: args.gpt_batch])
    model.to(device)
    plain = saved_activation_bytes(lambda: lm_loss(model(x), y), model)
    ck = enable_activation_checkpointing(copy.deepcopy(model))
    ckpt = saved_activation_bytes(lambda: lm_loss(ck(x), y), ck)
    print(f"\nactivation memory kept for backward (tiny GPT): {plain / 2**20:.2f} MiB plain, {ckpt / 2**20:.2f} MiB "
          f"checkpointed ({1 - ckpt / plain:.0%} less)")

    if not args.skip_minilm:
        tok = load_tokenizer()
        reviews = load_reviews("train", limit=max(64, args.minilm_batch))
        collate = text_collate(tok, max_length=args.max_length)
        tokens = collate([reviews[i] for i in range(args.minilm_batch)])["input_ids"].shape[1]
        base = MiniLMClassifier(2)
        mini_rows = benchmark_techniques(lambda: copy.deepcopy(base), reviews, [t for t in techniques if not t.compile],
                                         batch_size=args.minilm_batch, steps=args.steps, warmup=1, device=device,
                                         lr=5e-5, collate_fn=collate, tokens_per_sample=tokens)
        print(f"\n### MiniLM fine-tune (22.7M parameters), batch {args.minilm_batch} x {tokens} tokens\n")
        print(techniques_table(mini_rows))


if __name__ == "__main__":
    main()
