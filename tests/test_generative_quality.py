"""Tests of tutorlib.generative.quality: the from-scratch Fréchet distance against closed forms and a direct
eigenvalue computation, feature extraction, mode coverage and conditional accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorlib.generative.gan import GAN
from tutorlib.generative.quality import (classifier_features, conditional_accuracy, frechet_distance,
                                         frechet_distance_features, gaussian_stats, mode_coverage, predict_classes)
from tutorlib.models import SmallCNN


def _random_spd(rng: np.random.RandomState, d: int) -> np.ndarray:
    a = rng.randn(d, d)
    return a @ a.T + 0.1 * np.eye(d)


@pytest.mark.parametrize("method", ["sqrtm", "eig"])
def test_diagonal_gaussians_match_the_closed_form(method):
    rng = np.random.RandomState(0)
    mu1, mu2 = rng.randn(5), rng.randn(5)
    v1, v2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2), method=method) == pytest.approx(closed, rel=1e-9)


@pytest.mark.parametrize("method", ["sqrtm", "eig"])
def test_full_covariances_match_a_direct_eigenvalue_computation(method):
    rng = np.random.RandomState(1)
    s1, s2 = _random_spd(rng, 6), _random_spd(rng, 6)
    mu1, mu2 = rng.randn(6), rng.randn(6)
    # Σ1 Σ2 is similar to a symmetric PSD matrix, so its eigenvalues are real and ≥ 0.
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    direct = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance(mu1, s1, mu2, s2, method=method) == pytest.approx(direct, rel=1e-7)


def test_one_dimensional_and_identity_cases():
    # 1-D: FD = (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    s = _random_spd(np.random.RandomState(2), 4)
    assert frechet_distance(np.zeros(4), s, np.zeros(4), s) == pytest.approx(0.0, abs=1e-7)


def test_sample_estimate_converges_to_the_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g) * torch.tensor([1.0, 2.0, 0.5])
    b = torch.randn(20000, 3, generator=g) * torch.tensor([2.0, 1.0, 0.5]) + torch.tensor([1.0, 0.0, 0.0])
    assert frechet_distance_features(a, b) == pytest.approx(3.0, abs=0.1)
    assert frechet_distance_features(a, b, method="eig") == pytest.approx(frechet_distance_features(a, b), rel=1e-6)


def test_gaussian_stats_is_unbiased_and_errors_are_clear():
    f = np.random.RandomState(0).randn(50, 3)
    mu, sigma = gaussian_stats(f)
    assert np.allclose(sigma, np.cov(f, rowvar=False, ddof=1)) and np.allclose(mu, f.mean(0))
    with pytest.raises(ValueError, match="2-D"):
        frechet_distance_features(np.zeros(5), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="different widths"):
        frechet_distance_features(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance_features(np.full((5, 2), np.nan), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="svd")


def test_classifier_features_and_predictions():
    clf = SmallCNN(width=32)
    x = torch.rand(7, 1, 8, 8)
    feats = classifier_features(clf, x, batch_size=3)
    assert feats.shape == (7, 256)
    clf.eval()
    with torch.no_grad():
        assert torch.allclose(clf.classifier[-1](feats), clf(x), atol=1e-5)
    assert predict_classes(clf, x).shape == (7,)
    with pytest.raises(TypeError, match="nn.Linear"):
        classifier_features(torch.nn.Conv2d(1, 2, 3), x)


def test_mode_coverage():
    collapsed = mode_coverage(torch.tensor([3] * 98 + [5, 6]))
    assert collapsed["n_modes"] == 1 and collapsed["counts"][3] == 98
    even = mode_coverage(torch.arange(10).repeat(10))
    assert even["n_modes"] == 10 and even["entropy"] == pytest.approx(np.log(10))
    with pytest.raises(ValueError, match="1-D"):
        mode_coverage(torch.zeros(2, 2, dtype=torch.long))


def test_conditional_accuracy_counts_agreement():
    class Echo(torch.nn.Module):
        """A 'classifier' that reads the class off the pixel the generator was told to light up."""

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)

        def forward(self, x):
            return x.flatten(1)[:, :10] * 100

    class Painter(torch.nn.Module):
        def sample(self, n, labels=None, generator=None):
            img = torch.zeros(n, 1, 8, 8)
            img.view(n, -1)[torch.arange(n), labels] = 1.0
            return img

    r = conditional_accuracy(Echo(), Painter(), n_per_class=3)
    assert r["accuracy"] == 1.0 and r["per_class"] == [1.0] * 10
    r = conditional_accuracy(SmallCNN(width=8), GAN(width=8, num_classes=10), n_per_class=2)
    assert 0.0 <= r["accuracy"] <= 1.0 and r["images"].shape == (20, 1, 8, 8)
