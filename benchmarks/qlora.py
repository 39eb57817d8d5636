"""QLoRA on the bundled SmolLM2: memory, time and quality of a float base + LoRA against an NF4 base + LoRA.

Each variant runs in a fresh subprocess (so one variant's memory never hides in another's), on the same
data, the same LoRA (r, alpha, seed) and the same batches:

- ``float+lora``     the float32 base (tutorlib.llm.nf4.lora_linears), the baseline;
- ``nf4+lora``       NF4 base, block 64, float32 scales (tutorlib.llm.nf4.quantize_linears);
- ``nf4-dq+lora``    the same with double-quantized (int8) scales;
- ``torchao+lora``   torchao's NF4Tensor (to_nf4, scaler block 64) with torchao's linear_nf4, our LoRA on top.

Columns: weight bytes (live parameter + buffer storages, exact), RSS after setup, peak RSS during
training (the kernel's high-water mark VmHWM, reset after setup through /proc/self/clear_refs; ru_maxrss,
which includes loading the float model first, is also reported), peak live tensor bytes of one training
step (activations, gradients, optimizer state, dequantized temporaries; tutorlib.measure.LiveTensorMemory),
median seconds per step (wall and CPU), and the held-out completion-only loss before and after
``--steps`` LoRA steps on the course's review→JSON instruction set.

Two facts to read the table with: on a CPU the 4-bit base is *slower* (every forward and backward dequantizes
each weight; there is no fused 4-bit kernel), and the "float" base is itself the GGUF's Q4_1 weights dequantized
to float32, so NF4 re-quantizes an already 4-bit model.

    python benchmarks/qlora.py                      # all variants, defaults below
    python benchmarks/qlora.py --steps 10 --variants float+lora nf4+lora
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS = ("float+lora", "nf4+lora", "nf4-dq+lora", "torchao+lora")
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SYSTEM = ("Reply with JSON only: product, sentiment (positive/negative/mixed), rating (1-5 or null), "
          "issue (price/quality/service/delay/none), would_recommend (true/false).")


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Give freed memory back to the OS, then reset the kernel's RSS high-water mark (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _examples(tok: Any, split: str, n: int) -> list[dict[str, list[int]]]:
    from tutorlib.data.instructions import load_extraction
    from tutorlib.llm.sft import mask_prompt_labels
    from tutorlib.models import chat_input_ids

    out = []
    for ex in load_extraction(split, limit=n):
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ex.review}]
        prompt = chat_input_ids(tok, msgs)[0].tolist()
        full = chat_input_ids(tok, msgs + [{"role": "assistant", "content": ex.answer}], add_generation_prompt=False)[0].tolist()
        assert full[:len(prompt)] == prompt, "the chat template does not extend the prompt"
        ids, labels = mask_prompt_labels(prompt, full[len(prompt):])
        out.append({"input_ids": ids, "labels": labels})
    return out


def _batch(examples: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id)
    labels = torch.full((len(examples), width), -100)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _heldout_loss(model: Any, batches: list[dict[str, Any]]) -> float:
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for b in batches:
            n = int((b["labels"][:, 1:] != -100).sum())
            total += float(model(**b).loss) * n
            count += n
    return total / count


def _own_memory(model: Any) -> Any:
    """Copy every weight into ordinary (anonymous) memory, tied weights once, so the loader's memory-mapped
    file can be released: every variant then holds exactly its own tensors in RSS."""
    import torch
    from torch import nn

    copies: dict[int, nn.Parameter] = {}
    with torch.no_grad():
        for m in model.modules():
            for name, p in list(m._parameters.items()):
                if p is not None:
                    if id(p) not in copies:
                        copies[id(p)] = nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
                    m._parameters[name] = copies[id(p)]
    return model


def _prepare(model: Any, variant: str, r: int, alpha: float) -> Any:
    from torch import nn

    from tutorlib.llm.nf4 import LoRALinear, lora_linears, quantize_linears

    if variant == "float+lora":
        return lora_linears(model, TARGETS, r=r, alpha=alpha)
    if variant == "nf4+lora":
        return quantize_linears(model, TARGETS, r=r, alpha=alpha)
    if variant == "nf4-dq+lora":
        return quantize_linears(model, TARGETS, r=r, alpha=alpha, double_quant=True, scale_block_size=64)
    if variant == "torchao+lora":
        from torchao.quantization import to_nf4
        from torchao.quantization.quantize_.workflows.nf4.nf4_tensor import linear_nf4

        class TorchaoNF4LoRA(LoRALinear):
            def _set_base(self, base: nn.Linear) -> None:
                self.weight = nn.Parameter(to_nf4(base.weight.detach(), 64, 64), requires_grad=False)

            def base_forward(self, x: Any) -> Any:
                return linear_nf4(x, self.weight)

        model.requires_grad_(False)
        for _, parent in list(model.named_modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear) and name in TARGETS:
                    setattr(parent, name, TorchaoNF4LoRA(child, r=r, alpha=alpha))
        return model
    raise ValueError(f"unknown variant {variant!r}: use one of {VARIANTS}")


def run_variant(args: argparse.Namespace) -> dict[str, Any]:
    """One variant, in this process: prepare, measure, train, evaluate; returns the row."""
    import gc

    import torch

    from tutorlib.llm.nf4 import lora_parameters, step_peak_bytes, weight_bytes
    from tutorlib.models import load_llm

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    model, tok = load_llm("smollm2", device="cpu")
    model = _own_memory(model)
    t0 = time.process_time()
    model = _prepare(model, args.variant, args.r, args.alpha)
    prep_cpu_s = time.process_time() - t0
    gc.collect()
    reset_ok = _reset_peak_rss()
    rss_setup = _status_kb("VmRSS")
    weights = weight_bytes(model)
    train = _examples(tok, "train", args.train)
    held = _examples(tok, "heldout", args.heldout)
    pad = tok.pad_token_id
    held_batches = [_batch(held[i:i + 8], pad) for i in range(0, len(held), 8)]
    train_batches = [_batch(train[(i * args.batch) % len(train):(i * args.batch) % len(train) + args.batch], pad)
                     for i in range(args.steps)]
    model.eval()                          # no dropout in SmolLM2; eval() keeps the runs deterministic
    before = _heldout_loss(model, held_batches)
    opt = torch.optim.AdamW(lora_parameters(model), lr=args.lr, weight_decay=0.0)

    def step(b: dict[str, Any]) -> float:
        loss = model(**b).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    box: dict[str, float] = {}
    step_peak = step_peak_bytes(lambda: box.update(loss=step(train_batches[0])), model=model)   # step 1, with Adam's state
    wall, cpu, losses = [], [], [box["loss"]]
    for b in train_batches[1:]:
        w0, c0 = time.perf_counter(), time.process_time()
        losses.append(step(b))
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    after = _heldout_loss(model, held_batches)
    return {
        "variant": args.variant, "frozen_MB": weights["frozen"] / 1e6, "lora_MB": weights["trainable"] / 1e6,
        "prep_cpu_s": prep_cpu_s, "rss_setup_MB": (rss_setup or 0) / 1024,
        "peak_rss_train_MB": (_status_kb("VmHWM") or 0) / 1024 if reset_ok else None,
        "ru_maxrss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "step_peak_live_MB": step_peak / 1e6,
        "step_wall_s": statistics.median(wall) if wall else None, "step_cpu_s": statistics.median(cpu) if cpu else None,
        "heldout_before": before, "heldout_after": after, "train_loss_first": losses[0], "train_loss_last": losses[-1],
        "steps": args.steps, "batch": args.batch, "tokens_per_batch": int(train_batches[0]["attention_mask"].sum()),
    }


def _fmt(x: Any, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--steps", type=int, default=20, help="LoRA steps (the first is measured for memory, not timed)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--train", type=int, default=200, help="training examples")
    p.add_argument("--heldout", type=int, default=40, help="held-out examples (other domains)")
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", help=argparse.SUPPRESS)          # set in the child process
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args()
    if args.variant:
        print("ROW " + json.dumps(run_variant(args)), flush=True)
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    rows = []
    for v in args.variants:
        cmd = [sys.executable, __file__, "--variant", v] + [f"--{k}={getattr(args, k)}" for k in
                                                              ("steps", "batch", "train", "heldout", "r", "alpha", "lr", "seed")]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = [ln for ln in done.stdout.splitlines() if ln.startswith("ROW ")]
        if done.returncode or not line:
            print(f"{v}: failed (exit {done.returncode})\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[-1][4:]))
        print(f"{v}: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    if not rows:
        sys.exit("no variant ran")
    r0 = rows[0]
    print(f"\nSmolLM2-135M (bundled, Q4_1 GGUF dequantized to float32), LoRA r={args.r} alpha={args.alpha:g} on "
          f"{len(TARGETS)} projections; {r0['steps']} steps of batch {r0['batch']} ({args.train} train / "
          f"{args.heldout} held-out examples), 1 thread, machine shared\n")
    head = ("variant", "frozen MB", "LoRA MB", "RSS setup MB", "peak RSS train MB", "ru_maxrss MB", "step live MB",
            "s/step wall", "s/step CPU", "held-out before", "held-out after", "quantize CPU s")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = (r["variant"], _fmt(r["frozen_MB"], ".1f"), _fmt(r["lora_MB"], ".1f"), _fmt(r["rss_setup_MB"], ".0f"),
                 _fmt(r["peak_rss_train_MB"], ".0f"), _fmt(r["ru_maxrss_MB"], ".0f"), _fmt(r["step_peak_live_MB"], ".0f"),
                 _fmt(r["step_wall_s"], ".2f"), _fmt(r["step_cpu_s"], ".2f"), _fmt(r["heldout_before"], ".3f"),
                 _fmt(r["heldout_after"], ".3f"), _fmt(r["prep_cpu_s"], ".1f"))
        print("| " + " | ".join(cells) + " |")
    print("\nOn a CPU the 4-bit base is slower: each forward and backward dequantizes every weight (no fused 4-bit "
          "kernel).\nThe 'float' base is itself the GGUF's Q4_1 weights dequantized, so NF4 re-quantizes a 4-bit model.")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
