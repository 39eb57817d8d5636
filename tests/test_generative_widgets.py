"""Tests of tutorlib.generative.widgets: interpolation and the latent explorer's update logic."""

from __future__ import annotations

import math

import pytest
import torch

from tutorlib.generative.vae import ConvVAE
from tutorlib.generative.widgets import LatentExplorer, interpolate, latent_explorer, slerp


def test_interpolate_endpoints_and_slerp_norm():
    z0, z1 = torch.randn(16), torch.randn(16)
    for method in ("linear", "slerp"):
        path = interpolate(z0, z1, steps=5, method=method)
        assert path.shape == (5, 16)
        assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    u0, u1 = z0 / z0.norm(), z1 / z1.norm()
    norms = slerp(u0, u1, torch.linspace(0, 1, 9)).norm(dim=1)
    assert torch.allclose(norms, torch.ones(9), atol=1e-5)  # slerp stays on the sphere …
    assert interpolate(u0, u1, 9).norm(dim=1).min() < 0.99  # … a straight line cuts inside it
    mid = slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.5]))
    assert torch.allclose(mid, torch.full((1, 2), math.sqrt(0.5)))
    assert torch.isfinite(slerp(z0, 3 * z0, torch.tensor([0.5]))).all()


def test_interpolate_errors():
    with pytest.raises(ValueError, match="steps"):
        interpolate(torch.zeros(2), torch.ones(2), steps=1)
    with pytest.raises(ValueError, match="one size"):
        interpolate(torch.zeros(2), torch.ones(3))
    with pytest.raises(ValueError, match="method"):
        interpolate(torch.zeros(2), torch.ones(2), method="cubic")
    with pytest.raises(TypeError, match="floating"):
        interpolate(torch.zeros(2, dtype=torch.long), torch.ones(2))


def test_explorer_sliders_redraw_the_image():
    vae = ConvVAE(latent_dim=3)
    ex = LatentExplorer(vae.decode, latent_dim=3, z_a=torch.zeros(3), z_b=torch.ones(3))
    assert ex.renders == 1
    assert "tutorlib-widget" in ex.box._dom_classes
    first = ex.last_image.clone()
    ex.sliders[0].value = 2.5
    assert ex.renders == 2
    assert not torch.allclose(first, ex.last_image)
    with torch.no_grad():
        assert torch.allclose(ex.last_image, vae.decode(torch.tensor([[2.5, 0.0, 0.0]]))[0])
    assert ex.last_figure.axes[0].get_title().startswith("decode(z)")


def test_explorer_path_slider_and_buttons_follow_a_to_b():
    vae = ConvVAE(latent_dim=2)
    ex = LatentExplorer(vae.decode, latent_dim=2, z_a=torch.tensor([-1.0, 0.0]), z_b=torch.tensor([1.0, 2.0]))
    ex.t.value = 0.5
    assert torch.allclose(ex.current_z(), torch.tensor([0.0, 1.0]), atol=1e-5)
    renders = ex.renders
    ex.to_b.click()
    assert torch.allclose(ex.current_z(), torch.tensor([1.0, 2.0])) and ex.renders == renders + 1  # one redraw, not one per slider


def test_latent_explorer_returns_the_container_and_validates():
    box = latent_explorer(ConvVAE(latent_dim=4).decode, 4, n_sliders=2)
    assert len(box.explorer.sliders) == 2
    with pytest.raises(ValueError, match="n_sliders"):
        LatentExplorer(ConvVAE(latent_dim=2).decode, 2, n_sliders=3)
    with pytest.raises(ValueError, match="z_a has 3 values"):
        LatentExplorer(ConvVAE(latent_dim=2).decode, 2, z_a=torch.zeros(3))
