"""DP-SGD: per-sample gradients (vmap vs a loop), clipping, privatization, the RDP accountant on known values, and FedAvg."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tutorlib.data import load_digits
from tutorlib.frontiers import (clip_per_sample, dp_epsilon, dp_sgd_step_fn, fedavg, federated_train, iid_split,
                                label_skew_split, per_sample_grads, per_sample_grads_loop, privatize,
                                rdp_subsampled_gaussian, rdp_to_epsilon)
from tutorlib.models import MLP
from tutorlib.train import Trainer


class _ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.norm(self.conv(x))).flatten(1))


@pytest.mark.parametrize("make", [lambda: MLP(64, [16], 10), _ConvNet])
def test_per_sample_grads_match_a_loop(make):
    torch.manual_seed(0)
    model = make()
    x, y = load_digits("train", limit=12).tensors
    if isinstance(model, MLP):
        x = x.flatten(1)
    fast, slow = per_sample_grads(model, x, y), per_sample_grads_loop(model, x, y)
    assert fast.keys() == slow.keys()
    for n in fast:
        torch.testing.assert_close(fast[n], slow[n], atol=1e-5, rtol=1e-4)


def test_per_sample_grads_refuse_batchnorm_in_training():
    from tutorlib.models import SmallCNN

    x, y = load_digits("train", limit=4).tensors
    with pytest.raises(ValueError, match="BatchNorm"):
        per_sample_grads(SmallCNN(), x, y)


def test_clipping_bounds_every_example_and_keeps_small_ones():
    g = {"w": torch.randn(8, 5) * torch.tensor([0.01, 0.1, 1, 10, 100, 0.5, 2, 0]).view(-1, 1), "b": torch.randn(8, 2)}
    c = clip_per_sample(g, 1.0)
    before = torch.sqrt(g["w"].pow(2).sum(1) + g["b"].pow(2).sum(1))
    after = torch.sqrt(c["w"].pow(2).sum(1) + c["b"].pow(2).sum(1))
    assert (after <= 1.0 + 1e-5).all()
    small = before < 1.0
    torch.testing.assert_close(after[small], before[small])


def test_privatize_noise_has_the_right_scale():
    g = {"w": torch.zeros(4, 20000)}
    out = privatize(g, max_norm=2.0, noise_multiplier=1.5, expected_batch=4, generator=torch.Generator().manual_seed(0))
    assert out["w"].std().item() == pytest.approx(1.5 * 2.0 / 4, rel=0.03)


def test_rdp_without_subsampling_is_the_gaussian_mechanism():
    orders = [2, 3.5, 10]
    for sigma in (0.8, 2.0):
        got = rdp_subsampled_gaussian(1.0, sigma, orders, steps=7)
        assert got == pytest.approx([7 * a / (2 * sigma**2) for a in orders])


def test_rdp_integer_orders_match_numerical_integration_of_the_definition():
    from scipy import integrate

    q, sigma = 0.05, 1.2
    for alpha in (2, 5, 12):
        def f(z):
            return math.exp(-z * z / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2) * (
                (1 - q) + q * math.exp((2 * z - 1) / (2 * sigma**2))) ** alpha
        a_alpha, _ = integrate.quad(f, -40 * sigma, 40 * sigma, epsrel=1e-12, limit=200)
        assert rdp_subsampled_gaussian(q, sigma, [alpha])[0] == pytest.approx(math.log(a_alpha) / (alpha - 1), rel=1e-6)
        # the fractional path (numerical integral) agrees with the exact binomial sum
        assert rdp_subsampled_gaussian(q, sigma, [alpha + 1e-9])[0] == pytest.approx(
            rdp_subsampled_gaussian(q, sigma, [alpha])[0], rel=1e-5)


def test_epsilon_matches_opacus_reference_value():
    # opacus/tests/accountants_test.py::test_rdp_accountant: sigma 1.5, q 0.04, 90 epochs, delta 1e-5 -> 7.32911117143
    assert dp_epsilon(0.04, 1.5, int(90 / 0.04), delta=1e-5) == pytest.approx(7.32911117143, abs=1e-6)


def test_epsilon_behaves():
    assert dp_epsilon(0.01, 2.0, 1000, orders=range(2, 64)) < dp_epsilon(0.01, 1.0, 1000, orders=range(2, 64))
    assert dp_epsilon(0.01, 1.0, 100, orders=range(2, 64)) < dp_epsilon(0.01, 1.0, 1000, orders=range(2, 64))
    assert rdp_to_epsilon([0.0], [2], 1e-5)[0] >= 0
    with pytest.raises(ValueError, match="delta"):
        rdp_to_epsilon([1.0], [2], 0.0)
    with pytest.raises(ValueError, match="noise_multiplier"):
        rdp_subsampled_gaussian(0.1, 0.0, [2])


def test_dp_sgd_trains_and_noise_costs_accuracy():
    x, y = load_digits("train", flat=True).tensors
    xt, yt = load_digits("test", flat=True).tensors
    accs = {}
    for sigma in (0.0, 8.0):
        torch.manual_seed(0)
        m = MLP(64, [32], 10)
        Trainer(m, step_fn=dp_sgd_step_fn(x, y, 32 / len(x), 1.0, sigma, lr=0.5), manual_optimization=True,
                batch_size=1, metrics=(), progress=False, log=False).fit(TensorDataset(torch.arange(60)))
        with torch.no_grad():
            accs[sigma] = float((m(xt).argmax(1) == yt).float().mean())
    assert accs[0.0] > 0.6 and accs[8.0] < accs[0.0] - 0.1


def test_fedavg_weights_and_buffers():
    a = {"w": torch.tensor([0.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0]), "n": torch.tensor(5)}
    out = fedavg([a, b], [3, 1])
    assert out["w"].item() == 1.0 and out["n"].item() == 3
    with pytest.raises(ValueError, match="different parameter names"):
        fedavg([a, {"v": torch.zeros(1)}])
    with pytest.raises(ValueError, match="weights"):
        fedavg([a, b], [1, -1])


def test_splits():
    y = np.repeat(np.arange(10), 20)
    parts = label_skew_split(y, 10, classes_per_client=2)
    assert sorted(np.concatenate(parts).tolist()) == list(range(200))
    assert all(len(set(y[p])) == 2 for p in parts)
    assert sum(len(p) for p in iid_split(200, 7)) == 200
    with pytest.raises(ValueError, match="cannot cover"):
        label_skew_split(y, 2, classes_per_client=2)


def test_fedavg_learns_and_label_skew_hurts():
    x, y = load_digits("train", flat=True).tensors
    xt, yt = load_digits("test", flat=True).tensors
    accs = {}
    for name, parts in [("iid", iid_split(len(y), 5)), ("skew", label_skew_split(y.numpy(), 5, classes_per_client=2))]:
        _, h = federated_train(lambda: MLP(64, [32], 10), x, y, parts, xt, yt, rounds=3, local_epochs=2, lr=0.2,
                               batch_size=16)
        accs[name] = h["accuracy"][-1]
    assert accs["iid"] > 0.8
    assert accs["skew"] < accs["iid"]
