"""Benchmark for lesson 07 (multimodal CLIP): loss agreement with transformers, training speed, zero-shot
accuracy with and without prompt ensembling on seen and held-out colour–shape pairs, retrieval recall@k,
digits zero-shot, and how fast the offline pretrained-CLIP path fails.

Prints Markdown tables and the machine. Sizes default to the lesson's full mode.

    python benchmarks/multimodal.py                 # lesson sizes
    python benchmarks/multimodal.py --epochs 3      # quicker
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from functools import partial

import torch

from tutorlib import multimodal as mm
from tutorlib.data import ShapesDataset
from tutorlib.data.hub import HubUnavailable
from tutorlib.runtime import get_device, seed_everything
from tutorlib.train import Trainer


def table(rows: list[dict], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def loss_agreement() -> float:
    from transformers.models.clip.modeling_clip import image_text_contrastive_loss

    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for b in (2, 16, 128, 512):
        logits = torch.randn(b, b, generator=g) * 10
        worst = max(worst, abs(mm.info_nce(logits).item() - image_text_contrastive_loss(logits).item()))
    return worst


def step_speed(tok, patch: int, device: torch.device, batch: int = 128, steps: int = 10) -> float:
    model = mm.build_clip(tok, patch_size=patch, seed=0).to(device)
    ds = ShapesDataset(batch, seed=0)
    b = {k: v.to(device) for k, v in mm.clip_collate(tok, 32)([ds[i] for i in range(batch)]).items()}
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    from types import SimpleNamespace

    trainer = SimpleNamespace(model=model)
    for i in range(steps + 2):
        if i == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = mm.contrastive_step(trainer, b)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def one_cycle(lr):
    return lambda opt, total: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=6144)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--digit-epochs", type=int, default=25)
    p.add_argument("--n-test", type=int, default=600)
    p.add_argument("--device", default=None)
    args = p.parse_args()
    seed_everything(0)
    device = get_device(args.device)
    tok = mm.build_caption_tokenizer()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {device}\n")

    print("## Loss and speed\n")
    rows = [{"measure": "largest abs. difference, InfoNCE vs transformers CLIP loss (B = 2…512)", "value": f"{loss_agreement():.2e}"}]
    for patch in (8, 4):
        rows.append({"measure": f"train pairs/s, small CLIP (64 wide, 2+2 layers, patch {patch}, batch 128)",
                     "value": f"{step_speed(tok, patch, device):.0f}"})
    t0 = time.perf_counter()
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        mm.load_clip(mm.DEFAULT_CLIP_ID)
    except HubUnavailable:
        pass
    rows.append({"measure": "load_clip(hub id) failure time offline (s)", "value": f"{time.perf_counter() - t0:.3f}"})
    print(table(rows, ["measure", "value"]))

    print("\n## Shapes: zero-shot and retrieval on held-out data\n")
    held = mm.HELD_OUT_PAIRS
    train = ShapesDataset(args.n_train, seed=0, exclude=held)
    val = ShapesDataset(512, seed=1, exclude=held)
    seen = ShapesDataset(args.n_test, seed=2, exclude=held)
    unseen = ShapesDataset(args.n_test, seed=3, only=held)
    model = mm.build_clip(tok, patch_size=8, seed=0)
    trainer = Trainer(model, lr=2e-3, weight_decay=0.05, step_fn=mm.contrastive_step, collate_fn=mm.clip_collate(tok, 32),
                      batch_size=128, scheduler=one_cycle(2e-3), device=device, progress=False, log=False)
    t0 = time.perf_counter()
    hist = trainer.fit(train, val, epochs=args.epochs)
    seconds = time.perf_counter() - t0
    print(f"trained {trainer.global_step} steps in {seconds:.0f} s; val loss {hist['val_loss'][-1]:.3f}; "
          f"learned temperature {1 / model.logit_scale.exp().item():.4f}\n")
    enc = partial(mm.encode_texts, model, tok)
    s_img, s_txt, s_cap = mm.embed_pairs(model, tok, seen)
    u_img, u_txt, u_cap = mm.embed_pairs(model, tok, unseen)
    s_lab, u_lab = mm.shape_labels(seen), mm.shape_labels(unseen)
    prompts = {"short \"a {}\"": [mm.SHAPE_SHORT_TEMPLATE], "one template": list(mm.SHAPE_TEMPLATES[:1]),
               "ensemble of 8": list(mm.SHAPE_TEMPLATES)}
    rows = []
    for name, tpl in prompts.items():
        a = mm.shapes_zero_shot(s_img, s_lab, enc, tpl)
        b = mm.shapes_zero_shot(u_img, u_lab, enc, tpl)
        c = mm.shapes_zero_shot(u_img, u_lab, enc, tpl, candidates=mm.held_out_classnames())
        rows.append({"prompts": name, "seen pairs (20-way)": f"{a['accuracy']:.3f}",
                     "held-out pairs (20-way)": f"{b['accuracy']:.3f}",
                     "held-out colour / shape": f"{b['colour_accuracy']:.3f} / {b['shape_accuracy']:.3f}",
                     "held-out pairs (5-way)": f"{c['accuracy']:.3f}"})
    print(table(rows, list(rows[0])))
    print("\nchance: 0.050 (20-way), 0.200 (5-way)\n")
    rows = []
    for name, (img, txt, cap) in {"seen pairs": (s_img, s_txt, s_cap), "held-out pairs": (u_img, u_txt, u_cap)}.items():
        r = mm.retrieval_report(img, txt, cap, ks=(1, 5))
        rows.append({"test set": name, "img→txt R@1": f"{r['image_to_text_R@1']:.3f}", "img→txt R@5": f"{r['image_to_text_R@5']:.3f}",
                     "txt→img R@1": f"{r['text_to_image_R@1']:.3f}", "txt→img R@5": f"{r['text_to_image_R@5']:.3f}",
                     "chance R@1 / R@5": f"{r['chance_R@1']:.3f} / {r['chance_R@5']:.3f}"})
    print(table(rows, list(rows[0])))

    if args.digit_epochs > 0:
        print("\n## Digits: zero-shot on the test split\n")
        d_train, d_val, d_test = mm.DigitCaptions("train", seed=0), mm.DigitCaptions("val", seed=1), mm.DigitCaptions("test", seed=2)
        dm = mm.build_clip(tok, patch_size=8, seed=1)
        dt = Trainer(dm, lr=2e-3, weight_decay=0.05, step_fn=mm.contrastive_step, collate_fn=mm.clip_collate(tok, 32),
                     batch_size=64, scheduler=one_cycle(2e-3), device=device, progress=False, log=False)
        t0 = time.perf_counter()
        dt.fit(d_train, d_val, epochs=args.digit_epochs)
        d_seconds = time.perf_counter() - t0
        d_img, _, _ = mm.embed_pairs(dm, tok, d_test)
        denc = partial(mm.encode_texts, dm, tok)
        rows = [{"prompts": t.replace("{}", "…"),
                 "test accuracy": f"{mm.zero_shot_accuracy(d_img, d_test.labels, mm.zero_shot_weights(denc, mm.NUMBER_WORDS, [t])):.3f}"}
                for t in mm.DIGIT_TEMPLATES]
        rows.append({"prompts": "ensemble of 5",
                     "test accuracy": f"{mm.zero_shot_accuracy(d_img, d_test.labels, mm.zero_shot_weights(denc, mm.NUMBER_WORDS, mm.DIGIT_TEMPLATES)):.3f}"})
        print(f"trained {dt.global_step} steps in {d_seconds:.0f} s ({len(d_test)} test digits; chance 0.100)\n")
        print(table(rows, ["prompts", "test accuracy"]))


if __name__ == "__main__":
    main()
