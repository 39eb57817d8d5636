"""Integrated gradients from scratch: the same numbers as captum, completeness, and clear errors."""

import pytest
import torch
from torch import nn

from tutorlib.explain.gradients import integrated_gradients, path_points


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).double()


@pytest.mark.parametrize("method", ["riemann_middle", "riemann_left", "riemann_right", "gausslegendre"])
def test_matches_captum(method):
    from captum.attr import IntegratedGradients

    model = _mlp()
    x = torch.randn(4, 5, dtype=torch.float64)
    base = 0.1 * torch.randn(4, 5, dtype=torch.float64)
    ours, delta = integrated_gradients(model, x, base, target=2, steps=9, method=method, internal_batch_size=7)
    ref, ref_delta = IntegratedGradients(model).attribute(x, base, target=2, n_steps=9, method=method,
                                                          return_convergence_delta=True)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(delta, ref_delta, atol=1e-6, rtol=1e-5)


def test_completeness_improves_with_steps():
    model = _mlp()
    x = torch.randn(3, 5, dtype=torch.float64)
    deltas = [integrated_gradients(model, x, target=0, steps=s)[1].abs().max().item() for s in (2, 8, 64)]
    assert deltas[2] < deltas[0] and deltas[2] < 1e-3


def test_linear_model_is_exact_for_any_rule():
    w = torch.tensor([[1.0], [-2.0], [0.5]])
    x = torch.tensor([[3.0, 1.0, 2.0]])
    for method in ("riemann_middle", "riemann_trapezoid", "gausslegendre"):
        attr, delta = integrated_gradients(lambda z: z @ w, x, steps=3, method=method)
        assert attr.tolist() == [[3.0, -2.0, 1.0]]
        assert abs(delta.item()) < 1e-6


def test_path_points_weights_sum_to_one():
    for method in ("riemann_middle", "riemann_trapezoid", "gausslegendre"):
        alphas, weights = path_points(10, method)
        assert weights.sum().item() == pytest.approx(1.0)
        assert 0 <= alphas.min() and alphas.max() <= 1


def test_bad_input_errors():
    model = _mlp()
    with pytest.raises(TypeError, match="floating-point"):
        integrated_gradients(model, torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="batch dimension"):
        integrated_gradients(model, torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="pass target"):
        integrated_gradients(model, torch.ones(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="baseline has shape"):
        integrated_gradients(model, torch.ones(2, 5, dtype=torch.float64), torch.zeros(1, 5), target=0)
    with pytest.raises(ValueError, match="unknown method"):
        path_points(4, "simpson")
