"""Latent-space explorer: interpolate between two latent points, and move sliders over latent dimensions.

:func:`interpolate` (linear or spherical) is the plain function; :class:`LatentExplorer` wraps any
``decode(z) -> images in [0, 1]`` (a VAE's decoder, a GAN's generator) in ipywidgets: one slider
per latent dimension, a slider ``t`` that walks from point A to point B, and buttons that set the
sliders to A or B. The drawing logic lives in :meth:`LatentExplorer.update` so tests can drive it.

>>> import torch
>>> interpolate(torch.zeros(2), torch.ones(2), steps=3).tolist()
[[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from tutorlib.widgets import redraw

__all__ = ["interpolate", "slerp", "LatentExplorer", "latent_explorer", "INTERPOLATIONS"]

INTERPOLATIONS = ("linear", "slerp")


def _check_points(z0: torch.Tensor, z1: torch.Tensor) -> None:
    for name, z in (("z0", z0), ("z1", z1)):
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(z).__name__}")
    if z0.shape != z1.shape or z0.dim() != 1:
        raise ValueError(f"z0 and z1 must be 1-D latent vectors of one size, got {tuple(z0.shape)} and {tuple(z1.shape)}")


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: rows ``sin((1−t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1`` with Ω the angle between them.

    It keeps the norm of Gaussian latents typical (a straight line between two N(0, I) points passes
    closer to the origin, where samples rarely lie). Falls back to the straight line when z0 ∥ z1.

    >>> slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.5])).tolist()
    [[0.7071067690849304, 0.7071067690849304]]
    """
    _check_points(z0, z1)
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).reshape(-1, 1)
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(torch.sin(omega).abs()) < 1e-6:
        return (1 - t) * z0 + t * z1
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * z0 + torch.sin(t * omega) / so * z1


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int = 8, method: str = "linear") -> torch.Tensor:
    """``steps`` latent points from ``z0`` to ``z1`` (both ends included), as a (steps, D) tensor.

    >>> interpolate(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), steps=3, method="slerp").shape
    torch.Size([3, 2])
    """
    _check_points(z0, z1)
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int ≥ 2 (the two end points included), got {steps!r}")
    if method not in INTERPOLATIONS:
        raise ValueError(f"method must be one of {INTERPOLATIONS}, got {method!r}")
    t = torch.linspace(0.0, 1.0, steps, dtype=z0.dtype, device=z0.device)
    if method == "slerp":
        return slerp(z0, z1, t)
    return (1 - t[:, None]) * z0 + t[:, None] * z1


def _to_hwc(img: torch.Tensor):
    img = img.detach().float().cpu()
    if img.dim() == 3 and img.shape[0] == 1:
        return img[0].numpy(), "gray_r"
    if img.dim() == 3:
        return img.permute(1, 2, 0).clamp(0, 1).numpy(), None
    return img.numpy(), "gray_r"


class LatentExplorer:
    """Sliders over the first ``n_sliders`` latent dimensions plus an A→B interpolation slider.

    ``decode(z)`` maps (B, latent_dim) codes to (B, C, H, W) images in [0, 1]. Dimensions without a
    slider keep their value from ``z_a``. :meth:`update` redraws into :attr:`out` and stores the
    current image in :attr:`last_image` and the figure in :attr:`last_figure`.

    >>> from tutorlib.generative.vae import ConvVAE
    >>> ex = LatentExplorer(ConvVAE(latent_dim=2).decode, latent_dim=2)
    >>> ex.sliders[0].value = 1.5; ex.last_image.shape
    torch.Size([1, 8, 8])
    """

    def __init__(self, decode: Callable[[torch.Tensor], torch.Tensor], latent_dim: int, n_sliders: int | None = None,
                 z_a: torch.Tensor | None = None, z_b: torch.Tensor | None = None, value_range: float = 3.0,
                 steps: int = 8, method: str = "linear", dim_names: Sequence[str] | None = None,
                 title: str = "Latent explorer") -> None:
        import ipywidgets as w

        if not callable(decode):
            raise TypeError("decode must be a function z -> images (e.g. vae.decode or gan.decode)")
        if latent_dim <= 0:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        n_sliders = min(latent_dim, 8) if n_sliders is None else n_sliders
        if not 1 <= n_sliders <= latent_dim:
            raise ValueError(f"n_sliders must be between 1 and latent_dim={latent_dim}, got {n_sliders}")
        if method not in INTERPOLATIONS:
            raise ValueError(f"method must be one of {INTERPOLATIONS}, got {method!r}")
        gen = torch.Generator().manual_seed(0)
        self.z_a = (z_a.detach().flatten().float().cpu() if z_a is not None else torch.randn(latent_dim, generator=gen))
        self.z_b = (z_b.detach().flatten().float().cpu() if z_b is not None else torch.randn(latent_dim, generator=gen))
        for name, z in (("z_a", self.z_a), ("z_b", self.z_b)):
            if z.numel() != latent_dim:
                raise ValueError(f"{name} has {z.numel()} values, expected latent_dim={latent_dim}")
        self.decode, self.latent_dim, self.steps, self.title = decode, latent_dim, steps, title
        names = list(dim_names) if dim_names is not None else [f"z[{i}]" for i in range(n_sliders)]
        self.sliders = [w.FloatSlider(value=float(self.z_a[i]), min=-value_range, max=value_range, step=0.05,
                                      description=names[i], continuous_update=False) for i in range(n_sliders)]
        self.t = w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="A → B: t", continuous_update=False)
        self.method = w.Dropdown(options=list(INTERPOLATIONS), value=method, description="path")
        self.to_a = w.Button(description="sliders ← A")
        self.to_b = w.Button(description="sliders ← B")
        self.out = w.Output()
        self.last_image: torch.Tensor | None = None
        self.last_figure = None
        self.renders = 0
        self._muted = False
        for s in self.sliders:
            s.observe(lambda _c: self.update(), names="value")
        self.t.observe(lambda _c: self._follow_path(), names="value")
        self.method.observe(lambda _c: self._follow_path(), names="value")
        self.to_a.on_click(lambda _b: self.set_z(self.z_a))
        self.to_b.on_click(lambda _b: self.set_z(self.z_b))
        controls = w.VBox([w.HTML(f"<b>{title}</b>: move a slider to change one latent dimension"),
                           *self.sliders, w.HBox([self.t, self.method]), w.HBox([self.to_a, self.to_b])])
        self.box = w.HBox([controls, self.out])
        self.box.add_class("tutorlib-widget")
        self.update()

    # ------------------------------------------------------------------ state
    def current_z(self) -> torch.Tensor:
        """The latent code the sliders describe (dims without a slider come from ``z_a``).

        >>> from tutorlib.generative.vae import ConvVAE
        >>> LatentExplorer(ConvVAE(latent_dim=2).decode, 2, z_a=torch.zeros(2)).current_z().tolist()
        [0.0, 0.0]
        """
        z = self.z_a.clone()
        for i, s in enumerate(self.sliders):
            z[i] = float(s.value)
        return z

    def set_z(self, z: torch.Tensor) -> None:
        """Move every slider to ``z`` (clipped to the slider range) and redraw once."""
        self._muted = True
        try:
            for i, s in enumerate(self.sliders):
                s.value = float(min(max(float(z[i]), s.min), s.max))
        finally:
            self._muted = False
        self.update()

    def _follow_path(self) -> None:
        path = interpolate(self.z_a, self.z_b, steps=101, method=self.method.value)
        self.set_z(path[int(round(float(self.t.value) * 100))])

    # ------------------------------------------------------------------ drawing
    @torch.no_grad()
    def render(self):
        """Decode the current code and the A→B path; return the matplotlib figure (also kept in last_figure)."""
        import matplotlib.pyplot as plt

        z = self.current_z()
        path = interpolate(self.z_a, self.z_b, steps=self.steps, method=self.method.value)
        imgs = self.decode(torch.cat([z[None], path]).float())
        if not isinstance(imgs, torch.Tensor) or imgs.dim() != 4 or len(imgs) != len(path) + 1:
            raise ValueError("decode(z) must return images of shape (B, C, H, W), one per latent code")
        self.last_image = imgs[0].detach().cpu()
        fig = plt.figure(figsize=(1.1 * self.steps, 3.6))
        grid = fig.add_gridspec(2, self.steps, height_ratios=[2.2, 1])
        ax = fig.add_subplot(grid[0, :])
        img, cmap = _to_hwc(imgs[0])
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(f"decode(z), z[:{len(self.sliders)}] = "
                     + ", ".join(f"{float(v):.1f}" for v in z[:len(self.sliders)]), fontsize=9)
        ax.set_xlabel("pixel x")
        ax.set_ylabel("pixel y")
        ax.set_xticks([]), ax.set_yticks([])
        for k in range(self.steps):
            a = fig.add_subplot(grid[1, k])
            im, cm = _to_hwc(imgs[k + 1])
            a.imshow(im, cmap=cm, vmin=0, vmax=1)
            a.set_xticks([]), a.set_yticks([])
            a.set_xlabel(f"t={k / (self.steps - 1):.2f}", fontsize=7)
        fig.suptitle(f"{self.title}: {self.method.value} path from A (t=0) to B (t=1)", fontsize=10)
        self.last_figure = fig
        self.renders += 1
        return fig

    def update(self) -> None:
        """Redraw into :attr:`out` (called by every slider, button and dropdown)."""
        if self._muted:
            return

        redraw(self.out, self.render())


def latent_explorer(decode: Callable[[torch.Tensor], torch.Tensor], latent_dim: int, **kwargs) -> "object":
    """Build a :class:`LatentExplorer` and return its widget container (``.explorer`` holds the explorer).

    >>> from tutorlib.generative.vae import ConvVAE
    >>> box = latent_explorer(ConvVAE(latent_dim=2).decode, 2); box.explorer.renders
    1
    """
    explorer = LatentExplorer(decode, latent_dim, **kwargs)
    explorer.box.explorer = explorer
    return explorer.box
