"""Sample quality, measured: a Fréchet distance in a classifier's feature space, mode coverage, and how often a
classifier recognises the class a conditional generator was asked for.

The Fréchet distance between two Gaussians N(μ₁, Σ₁) and N(μ₂, Σ₂) (Dowson & Landau, 1982) is

    FD = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2}).

FID (Heusel et al., 2017) fits those Gaussians to Inception-v3 features of real and generated images.
Here the features come from a small classifier trained in the lesson on the same data, so the
number is comparable between models of this course, not with published FIDs.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> a, b = torch.randn(500, 4, generator=g), torch.randn(500, 4, generator=g) + 1.0
>>> round(frechet_distance_features(a, b), 0)
4.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import nn
from torch.utils.data import Dataset

from tutorlib.generative._images import check_images
from tutorlib.models import SmallCNN
from tutorlib.train import History, Trainer

__all__ = [
    "gaussian_stats",
    "frechet_distance",
    "frechet_distance_features",
    "classifier_features",
    "predict_classes",
    "mode_coverage",
    "conditional_accuracy",
    "train_digit_classifier",
    "SampleJudge",
    "FD_METHODS",
]

FD_METHODS = ("sqrtm", "eig")


def _as_numpy_2d(x: Any, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (N samples, D features), got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{what} needs at least 2 samples to estimate a covariance, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or Inf: check the generator's output")
    return arr


def gaussian_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of ``features`` (N, D), unbiased (ddof=1) as in FID, in float64.

    >>> mu, sigma = gaussian_stats(np.array([[0.0, 0.0], [2.0, 2.0]])); mu.tolist(), sigma.tolist()
    ([1.0, 1.0], [[2.0, 2.0], [2.0, 2.0]])
    """
    f = _as_numpy_2d(features, "features")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((a + a.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, method: str = "sqrtm", eps: float = 1e-6) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2), written out from the formula.

    ``method="sqrtm"`` takes the matrix square root of Σ₁Σ₂ with ``scipy.linalg.sqrtm`` (as
    pytorch-fid does; a tiny ``eps``·I is added when the product is singular, and the round-off
    imaginary part is dropped); ``method="eig"`` uses tr (Σ₁Σ₂)^{1/2} = tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2},
    a symmetric matrix whose eigenvalues give the trace directly (more stable).

    >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))
    4.0
    """
    if method not in FD_METHODS:
        raise ValueError(f"method must be one of {FD_METHODS}, got {method!r}")
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"expected means (D,) and covariances (D, D) of one size, got {mu1.shape}, {s1.shape}, "
                         f"{mu2.shape}, {s2.shape}")
    diff = mu1 - mu2
    if method == "sqrtm":
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = eps * np.eye(d)
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
        if np.iscomplexobj(covmean):
            covmean = covmean.real
        tr_covmean = float(np.trace(covmean))
    else:
        r1 = _sqrt_psd(s1)
        vals = np.linalg.eigvalsh(r1 @ s2 @ r1)
        tr_covmean = float(np.sqrt(np.clip(vals, 0.0, None)).sum())
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(value, 0.0) if value > -1e-6 * (1 + abs(np.trace(s1)) + abs(np.trace(s2))) else value


def frechet_distance_features(features_a: Any, features_b: Any, method: str = "sqrtm") -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N₁, D) and (N₂, D).

    >>> x = np.random.RandomState(0).randn(200, 3)
    >>> frechet_distance_features(x, x)
    0.0
    """
    fa, fb = _as_numpy_2d(features_a, "features_a"), _as_numpy_2d(features_b, "features_b")
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"the two feature sets have different widths: {fa.shape[1]} and {fb.shape[1]}")
    return frechet_distance(*gaussian_stats(fa), *gaussian_stats(fb), method=method)


def _last_linear(model: nn.Module) -> nn.Linear:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise TypeError(f"{type(model).__name__} has no nn.Linear layer: pass a classifier whose last layer is linear")
    return last


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def classifier_features(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The inputs of ``model``'s last linear layer for ``images`` (the classifier's penultimate features), on CPU.

    >>> classifier_features(SmallCNN(width=8), torch.rand(5, 1, 8, 8)).shape
    torch.Size([5, 64])
    """
    check_images(images)
    layer = _last_linear(model)
    grabbed: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, inp, _out: grabbed.append(inp[0].detach().float().cpu()))
    was = model.training
    model.eval()
    dev = _device_of(model)
    try:
        for i in range(0, len(images), batch_size):
            model(images[i:i + batch_size].to(dev))
    finally:
        handle.remove()
        model.train(was)
    return torch.cat(grabbed).flatten(1)


@torch.no_grad()
def predict_classes(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Arg-max class of ``model`` for each image, as an int64 CPU tensor.

    >>> predict_classes(SmallCNN(width=8), torch.rand(3, 1, 8, 8)).dtype
    torch.int64
    """
    check_images(images)
    was = model.training
    model.eval()
    dev = _device_of(model)
    try:
        out = [model(images[i:i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(images), batch_size)]
    finally:
        model.train(was)
    return torch.cat(out)


def mode_coverage(predictions: torch.Tensor, num_classes: int = 10, min_fraction: float = 0.02) -> dict[str, Any]:
    """How many classes a set of generated samples covers, from a classifier's predicted classes.

    ``n_modes``: classes receiving at least ``min_fraction`` of the samples (a class hit once by a
    stray sample does not count); ``entropy``: of the predicted-class histogram, in nats (log 10 ≈ 2.30
    for a perfectly even spread over 10 classes); ``counts``: the histogram.

    >>> mode_coverage(torch.tensor([1, 1, 1, 7]), num_classes=10)["n_modes"]
    2
    """
    if not isinstance(predictions, torch.Tensor) or predictions.dim() != 1:
        raise ValueError("predictions must be a 1-D tensor of class ids (use predict_classes(classifier, images))")
    if len(predictions) == 0:
        raise ValueError("predictions is empty")
    if num_classes <= 0 or not 0.0 <= min_fraction < 1.0:
        raise ValueError(f"need num_classes > 0 and 0 ≤ min_fraction < 1, got {num_classes}, {min_fraction}")
    counts = torch.bincount(predictions.long().cpu(), minlength=num_classes).double()
    if len(counts) > num_classes:
        raise ValueError(f"a prediction is ≥ num_classes={num_classes}")
    p = counts / counts.sum()
    nz = p[p > 0]
    return {"n_modes": int((p >= min_fraction).sum()), "entropy": max(0.0, float(-(nz * nz.log()).sum())),
            "max_entropy": math.log(num_classes), "counts": counts.long().tolist()}


@torch.no_grad()
def conditional_accuracy(classifier: nn.Module, gan: nn.Module, num_classes: int = 10, n_per_class: int = 50,
                         seed: int = 0) -> dict[str, Any]:
    """Ask a class-conditional GAN for ``n_per_class`` images of each class; how often does ``classifier`` agree?

    Returns ``accuracy`` (overall), ``per_class`` accuracies and the generated ``images``/``labels``.

    >>> from tutorlib.generative.gan import GAN
    >>> r = conditional_accuracy(SmallCNN(width=8), GAN(width=8, num_classes=10), n_per_class=2)
    >>> 0.0 <= r["accuracy"] <= 1.0
    True
    """
    if n_per_class <= 0:
        raise ValueError(f"n_per_class must be positive, got {n_per_class}")
    if not hasattr(gan, "sample"):
        raise TypeError("gan must have a .sample(n, labels=...) method (a tutorlib.generative.GAN)")
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    images = gan.sample(len(labels), labels=labels, generator=torch.Generator().manual_seed(seed)).cpu()
    pred = predict_classes(classifier, images)
    hit = (pred == labels).double()
    per_class = [float(hit[labels == c].mean()) for c in range(num_classes)]
    return {"accuracy": float(hit.mean()), "per_class": per_class, "images": images, "labels": labels}


def train_digit_classifier(train_data: Dataset | None = None, val_data: Dataset | None = None, epochs: int = 15,
                           width: int = 32, lr: float = 3e-3, device: str | torch.device | None = None,
                           **trainer_kwargs: Any) -> tuple[SmallCNN, History]:
    """A :class:`~tutorlib.models.SmallCNN` trained on the digits with the shared Trainer: the judge of samples.

    Its penultimate features (256 numbers with ``width=32``) are the space the Fréchet distance is measured in.

    >>> from tutorlib.data import load_digits
    >>> clf, h = train_digit_classifier(load_digits("train", limit=64), epochs=1, width=8, progress=False, log=False)
    >>> isinstance(clf, SmallCNN)
    True
    """
    from tutorlib.data import load_digits

    train_data = train_data if train_data is not None else load_digits("train")
    val_data = val_data if val_data is not None else load_digits("val")
    model = SmallCNN(in_channels=1, num_classes=10, width=width)
    history = Trainer(model, lr=lr, device=device, **trainer_kwargs).fit(train_data, val_data, epochs=epochs)
    return model, history


class SampleJudge:
    """Scores sets of digit images against a reference set with one trained classifier.

    ``judge(images)`` returns ``fd`` (Fréchet distance of the classifier's features to the
    reference images'), ``n_modes``, ``entropy`` and ``counts`` (from :func:`mode_coverage`). Compare
    sets of the same size: the Fréchet distance estimated from N samples is biased upwards for small N,
    so score a held-out set of real images of that size to get the floor a perfect generator would reach.
    It uses the eigen-decomposition form of the distance, which stays exact when a small sample makes
    the covariance singular (``scipy.linalg.sqrtm`` then warns and loses accuracy).

    >>> from tutorlib.data import load_digits
    >>> judge = SampleJudge(SmallCNN(width=8), load_digits("train", limit=64).tensors[0])
    >>> sorted(judge(load_digits("val", limit=32).tensors[0]))
    ['counts', 'entropy', 'fd', 'max_entropy', 'n_modes']
    """

    def __init__(self, classifier: nn.Module, reference_images: torch.Tensor, num_classes: int = 10,
                 min_fraction: float = 0.02) -> None:
        check_images(reference_images, "reference_images")
        self.classifier, self.num_classes, self.min_fraction = classifier, num_classes, min_fraction
        self.reference = gaussian_stats(classifier_features(classifier, reference_images))

    def __call__(self, images: torch.Tensor) -> dict[str, Any]:
        check_images(images, "the images to judge")
        feats = classifier_features(self.classifier, images)
        fd = frechet_distance(*gaussian_stats(feats), *self.reference, method="eig")
        cov = mode_coverage(predict_classes(self.classifier, images), self.num_classes, self.min_fraction)
        return {"fd": fd, **cov}
