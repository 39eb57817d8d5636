"""Benchmark of lesson 08: sample quality (Fréchet distance in a digit classifier's feature space, class coverage,
conditional accuracy) and training cost of the lesson's generators, printed as a Markdown table.

Run:  python benchmarks/generative.py [--scale 1.0] [--threads N] [--skip-text]

``--scale`` multiplies every epoch count (0.25 for a quick look). Wall time and process CPU time are
both reported: on a shared machine wall time mostly measures the other processes.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from tutorlib.data import load_digits
from tutorlib.generative import (GAN, ConvVAE, SampleJudge, conditional_accuracy, frechet_distance, train_digit_classifier,
                                 train_gan, train_vae)
from tutorlib.runtime import get_device, seed_everything


def timed(fn):
    """Run ``fn()``; return its result, wall seconds and process CPU seconds."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def text_rows(rows: list, ep, device) -> None:  # noqa: ANN001
    """The caption-conditioned generator of section 8: judge accuracy and caption agreement."""
    from tutorlib.data import ShapesDataset
    from tutorlib.generative import text2image as t2i

    seed_everything(0)
    train = ShapesDataset(3000, seed=10, exclude=[("red", "circle")])
    val = ShapesDataset(500, seed=11)

    def build():
        enc, tok, _ = t2i.train_caption_encoder(train, epochs=ep(8), device=device, progress=False, log=False)
        judge, _ = t2i.train_attribute_classifier(train, epochs=ep(8), device=device, progress=False, log=False)
        gan = GAN(latent_dim=32, channels=3, img_size=32, width=16, cond_dim=enc.text.dim, spectral_norm=True)
        train_gan(gan, t2i.conditioned_dataset(train, enc, tok), epochs=ep(10), device=device, progress=False, log=False)
        return enc, tok, judge, gan

    (enc, tok, judge, gan), w, c = timed(build)
    caps = t2i.all_captions()
    seen = t2i.caption_agreement(gan, enc, tok, judge, n_each=2, captions=[x for x in caps if "red circle" not in x[0]])
    unseen = t2i.caption_agreement(gan, enc, tok, judge, n_each=4, captions=[x for x in caps if "red circle" in x[0]])
    real = t2i.attribute_accuracy(judge, val.images, t2i.attribute_targets(val))
    retrieval = t2i.caption_retrieval_accuracy(enc, tok, val)
    for name, r in (("attribute judge on real validation shapes", real), ("generated, seen captions", seen),
                    ("generated, held-out 'red circle' captions", unseen)):
        rows.append((name, *(f"{r[k]:.1%}" for k in ("color", "shape", "size", "position", "all"))))
    rows.append((f"training (caption encoder: retrieval {retrieval:.1%} of 160; judge; GAN)", f"{w:.0f} s wall", f"{c:.0f} s CPU",
                 "", "", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every epoch count (default 1.0 = the lesson's full mode)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--skip-text", action="store_true", help="leave out the text-to-image pipeline (about 2 CPU-minutes)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ep = lambda n: max(1, round(n * args.scale))  # noqa: E731
    device = get_device()
    seed_everything(0)
    train, val = load_digits("train"), load_digits("val")
    held = torch.cat([load_digits("val").tensors[0], load_digits("test").tensors[0]])
    n = len(held)
    rows = []

    # The Fréchet distance itself: closed form vs the two from-scratch methods.
    import numpy as np

    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
    closed = 1.0 + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    fd_err = max(abs(frechet_distance(np.zeros(3), np.diag(var_a), np.array([1.0, 0, 0]), np.diag(var_b), method=m) - closed)
                 for m in ("sqrtm", "eig"))

    (clf, hist), w, c = timed(lambda: train_digit_classifier(train, val, epochs=ep(12), device=device, progress=False, log=False))
    judge = SampleJudge(clf, train.tensors[0])
    floor = judge(held)
    rows.append(("judge: SmallCNN classifier", f"val acc {hist.last('val_accuracy'):.3f}", "", "", w, c))
    rows.append(("real held-out digits (floor)", f"{floor['fd']:.2f}", floor["n_modes"], f"{floor['entropy']:.2f}", 0.0, 0.0))

    def vae_row(name: str, latent: int, epochs: int) -> None:
        seed_everything(0)
        model = ConvVAE(latent_dim=latent)
        _, w, c = timed(lambda: train_vae(model, train, epochs=epochs, device=device, progress=False, log=False))
        s = judge(model.sample(n, torch.Generator().manual_seed(1)).cpu())
        rows.append((name, f"{s['fd']:.2f}", s["n_modes"], f"{s['entropy']:.2f}", w, c))

    def gan_row(name: str, gan_kw: dict, epochs: int, **train_kw) -> GAN:
        seed_everything(0)
        gan = GAN(**{"latent_dim": 32, "channels": 1, "img_size": 8, "width": 32, **gan_kw})
        run, w, c = timed(lambda: train_gan(gan, train, epochs=epochs, device=device, progress=False, log=False, **train_kw))
        if gan.num_classes:
            acc = conditional_accuracy(clf, gan, n_per_class=54)
            imgs = acc["images"]
            extra = f" (classifier agrees {acc['accuracy']:.1%})"
        else:
            imgs, extra = gan.sample(n, generator=torch.Generator().manual_seed(1)).cpu(), ""
        s = judge(imgs)
        rows.append((name + extra + f"; D/G loss {run.tail_mean('d_loss'):.2f}/{run.tail_mean('g_loss'):.2f}",
                     f"{s['fd']:.2f}", s["n_modes"], f"{s['entropy']:.2f}", w, c))
        return gan

    vae_row("VAE, 2-d latent", 2, ep(30))
    vae_row("VAE, 8-d latent (β=1)", 8, ep(15))
    gan_row("DCGAN (Adam 2e-4, β1 0.5)", {}, ep(30))
    gan_row("conditional DCGAN", {"num_classes": 10}, ep(30))
    gan_row("Adam defaults (1e-3, β1 0.9)", {}, ep(20), lr_g=1e-3, lr_d=1e-3, betas=(0.9, 0.999))
    gan_row("Adam defaults + minibatch std", {"minibatch_std": True}, ep(20), lr_g=1e-3, lr_d=1e-3, betas=(0.9, 0.999))
    gan_row("TTUR (lr_d 4e-4, lr_g 1e-4)", {}, ep(20), lr_d=4e-4, lr_g=1e-4)
    strong = {"d_width": 64}
    gan_row("D wins (2× width, lr_d 2e-3, minimax G loss)", strong, ep(20), lr_d=2e-3, gen_loss="saturating")
    gan_row("D wins + non-saturating G loss", strong, ep(20), lr_d=2e-3)
    gan_row("D wins + spectral norm", {**strong, "spectral_norm": True}, ep(20), lr_d=2e-3, gen_loss="saturating")
    gan_row("D wins + label smoothing 0.2", strong, ep(20), lr_d=2e-3, gen_loss="saturating", label_smoothing=0.2)
    text = []
    if not args.skip_text:
        text_rows(text, ep, device)

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {device}; epochs × {args.scale:g}; "
          f"Fréchet distance vs closed form: max error {fd_err:.1e}\n")
    print(f"| model | Fréchet distance ({n} samples) | classes covered | class entropy (max 2.30) | train wall s | train CPU s |")
    print("|---|---|---|---|---|---|")
    for name, fd, modes, ent, w, c in rows:
        print(f"| {name} | {fd} | {modes} | {ent} | {w:.0f} | {c:.0f} |")
    if text:
        print("\n| text → image (agreement of the attribute judge) | colour | shape | size | position | all four |")
        print("|---|---|---|---|---|---|")
        for row in text:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
