"""Text-to-image in the spirit of DALL·E, at toy scale: draw "a small red circle at the top" from its caption.

Three parts, each trained with the shared Trainer:

1. a caption encoder (word embeddings + a GRU, mean-pooled, L2-normalised) trained contrastively
   against a small image encoder on the captioned shapes, like CLIP's text tower (InfoNCE, with
   identical captions in a batch not counted as negatives);
2. a DCGAN whose generator and (projection) discriminator are conditioned on the frozen caption
   embedding (:class:`tutorlib.generative.gan.GAN` with ``cond_dim``);
3. an attribute classifier (colour, shape, size, position) trained on real shapes, the judge:
   :func:`caption_agreement` asks the generator for each caption and counts how often the judge
   reads back the caption's attributes.

>>> from tutorlib.data import ShapesDataset
>>> tok = CaptionTokenizer.from_captions(ShapesDataset(16).captions)
>>> tok.encode(["a small red circle at the top"]).shape
torch.Size([1, 7])
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset, TensorDataset

from tutorlib.data import COLORS, POSITIONS, SHAPES, SIZES, ShapesDataset, caption_for
from tutorlib.generative._images import check_images
from tutorlib.generative.gan import GAN
from tutorlib.train import History, Trainer

__all__ = [
    "CaptionTokenizer",
    "CaptionEncoder",
    "ShapesImageEncoder",
    "DualEncoder",
    "contrastive_step_fn",
    "train_caption_encoder",
    "embed_captions",
    "caption_retrieval_accuracy",
    "caption_condition",
    "conditioned_dataset",
    "AttributeClassifier",
    "ATTRIBUTES",
    "attribute_targets",
    "train_attribute_classifier",
    "attribute_accuracy",
    "all_captions",
    "generate_from_captions",
    "caption_agreement",
]

#: The four attributes of a shapes caption and their values, in the order the classifier's heads use.
ATTRIBUTES: dict[str, tuple[str, ...]] = {"color": tuple(COLORS), "shape": SHAPES, "size": SIZES, "position": POSITIONS}
_HEAD_SIZES = [len(v) for v in ATTRIBUTES.values()]


def all_captions() -> list[tuple[str, dict[str, int]]]:
    """Every caption of the shapes world (5 colours × 4 shapes × 2 sizes × 4 positions = 160) with its attribute ids.

    >>> caps = all_captions(); len(caps), caps[0][0]
    (160, 'a small red circle at the top')
    """
    out = []
    for (ci, c), (si, s), (zi, z), (pi, p) in itertools.product(*(enumerate(v) for v in ATTRIBUTES.values())):
        out.append((caption_for(c, s, z, p), {"color": ci, "shape": si, "size": zi, "position": pi}))
    return out


# --------------------------------------------------------------------------- caption encoder


class CaptionTokenizer:
    """Word-level tokenizer over a fixed vocabulary (id 0 = padding, 1 = unknown word).

    >>> tok = CaptionTokenizer(["a", "red", "circle"]); tok.encode(["a red square"]).tolist()
    [[2, 3, 1]]
    """

    PAD, UNK = 0, 1

    def __init__(self, words: Sequence[str]) -> None:
        self.vocab = ["<pad>", "<unk>"] + sorted(set(words) - {"<pad>", "<unk>"}, key=list(words).index)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def from_captions(cls, captions: Sequence[str]) -> "CaptionTokenizer":
        """Vocabulary of every word in ``captions``, in order of first appearance.

        >>> len(CaptionTokenizer.from_captions(["a red circle", "a blue circle"]).vocab)
        6
        """
        words: list[str] = []
        for cap in captions:
            words += [w for w in cap.lower().split() if w not in words]
        return cls(words)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, captions: Sequence[str] | str) -> torch.Tensor:
        """Token ids (B, L) padded with 0 to the longest caption.

        >>> CaptionTokenizer(["a", "b"]).encode(["a", "a b"]).tolist()
        [[2, 0], [2, 3]]
        """
        if isinstance(captions, str):
            captions = [captions]
        if not captions:
            raise ValueError("no captions to encode")
        ids = [[self.index.get(w, self.UNK) for w in c.lower().split()] or [self.UNK] for c in captions]
        out = torch.zeros(len(ids), max(len(i) for i in ids), dtype=torch.long)
        for r, row in enumerate(ids):
            out[r, :len(row)] = torch.tensor(row)
        return out


class CaptionEncoder(nn.Module):
    """Token ids (B, L) → unit-length caption embeddings (B, dim): embeddings, a GRU, a masked mean, a projection.

    >>> CaptionEncoder(vocab_size=20, dim=16)(torch.tensor([[2, 3, 4, 0]])).shape
    torch.Size([1, 16])
    """

    def __init__(self, vocab_size: int, dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        if vocab_size <= 2 or dim <= 0 or hidden <= 0:
            raise ValueError(f"need vocab_size > 2 and positive dim/hidden, got {vocab_size}, {dim}, {hidden}")
        self.dim = dim
        self.embed = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"expected token ids (B, L) of dtype int64, got {tuple(ids.shape)} {ids.dtype}")
        mask = (ids != 0).float().unsqueeze(-1)
        h, _ = self.rnn(self.embed(ids))
        pooled = (h * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return F.normalize(self.proj(pooled), dim=-1)


class ShapesImageEncoder(nn.Module):
    """Small CNN: (B, 3, 32, 32) images → unit-length embeddings (B, dim). The image tower of the contrastive pair.

    >>> ShapesImageEncoder(dim=16)(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 16])
    """

    def __init__(self, dim: int = 32, width: int = 16) -> None:
        super().__init__()
        self.net = _conv_trunk(3, width)
        self.proj = nn.Linear(4 * width * 16, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "the image encoder's input")
        return F.normalize(self.proj(self.net(x)), dim=-1)


def _conv_trunk(in_ch: int, width: int) -> nn.Sequential:
    # 32 → 16 → 8 → 4, then flatten: keeps where things are (position) as well as what (shape, colour).
    # GroupNorm, not BatchNorm: after a few hundred steps BatchNorm's running statistics still lag the
    # batch statistics and the eval-mode network misreads colours.
    def block(i: int, o: int, k: int, s: int, p: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, k, s, p), nn.GroupNorm(min(4, o), o), nn.ReLU()]

    return nn.Sequential(
        *block(in_ch, width, 3, 1, 1), *block(width, width, 4, 2, 1),
        *block(width, 2 * width, 4, 2, 1), *block(2 * width, 4 * width, 4, 2, 1),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),
    )


class DualEncoder(nn.Module):
    """Caption encoder + image encoder with a learnable temperature (CLIP's logit scale, initialised to 1/0.07).

    >>> m = DualEncoder(CaptionEncoder(10, 8), ShapesImageEncoder(8))
    >>> m(torch.rand(2, 3, 32, 32), torch.tensor([[2, 3], [3, 4]])).shape
    torch.Size([2, 2])
    """

    def __init__(self, text: CaptionEncoder, image: ShapesImageEncoder, init_temperature: float = 0.07) -> None:
        super().__init__()
        self.text, self.image = text, image
        self.logit_scale = nn.Parameter(torch.tensor(1.0 / init_temperature).log())

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Image-to-caption similarity logits (B, B), scaled by exp(logit_scale) (capped at 100 like CLIP)."""
        scale = self.logit_scale.exp().clamp(max=100.0)
        return scale * self.image(images) @ self.text(ids).T


def contrastive_step_fn(trainer: Trainer, batch: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """``step_fn``: symmetric InfoNCE over a batch of (images, token ids); identical captions are not negatives.

    >>> m = DualEncoder(CaptionEncoder(10, 8), ShapesImageEncoder(8))
    >>> t = Trainer(m, step_fn=contrastive_step_fn, progress=False, log=False)
    >>> float(t.compute((torch.rand(4, 3, 32, 32), torch.tensor([[2, 3]] * 2 + [[3, 4]] * 2)))["loss"]) > 0
    True
    """
    images, ids = batch
    logits = trainer.model(images, ids)
    same = (ids[:, None, :] == ids[None, :, :]).all(-1)
    eye = torch.eye(len(ids), dtype=torch.bool, device=ids.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(len(ids), device=ids.device)
    loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    return {"loss": loss, "logits": logits.detach(), "targets": target}


def _pairs(ds: ShapesDataset, tokenizer: CaptionTokenizer) -> TensorDataset:
    if not isinstance(ds, ShapesDataset):
        raise TypeError(f"expected a tutorlib.data.ShapesDataset, got {type(ds).__name__}")
    return TensorDataset(ds.images, tokenizer.encode(ds.captions))


def train_caption_encoder(train_ds: ShapesDataset, epochs: int = 8, dim: int = 32, lr: float = 3e-3,
                          batch_size: int = 128, **trainer_kwargs: Any) -> tuple[DualEncoder, CaptionTokenizer, History]:
    """Train caption and image encoders contrastively on ``train_ds``; returns (dual encoder, tokenizer, history).

    The tokenizer's vocabulary covers every word of the shapes world, so unseen combinations of
    seen words ("a small red circle…" with red circles held out) still encode.

    >>> enc, tok, h = train_caption_encoder(ShapesDataset(64), epochs=1, progress=False, log=False)
    >>> enc.text.dim
    32
    """
    tokenizer = CaptionTokenizer.from_captions([c for c, _ in all_captions()])
    model = DualEncoder(CaptionEncoder(len(tokenizer), dim), ShapesImageEncoder(dim))
    trainer = Trainer(model, lr=lr, step_fn=contrastive_step_fn, batch_size=batch_size, **trainer_kwargs)
    history = trainer.fit(_pairs(train_ds, tokenizer), epochs=epochs)
    return model, tokenizer, history


@torch.no_grad()
def embed_captions(encoder: DualEncoder | CaptionEncoder, tokenizer: CaptionTokenizer,
                   captions: Sequence[str]) -> torch.Tensor:
    """Unit-length caption embeddings (B, dim) on CPU, from the (frozen) caption encoder.

    >>> e = embed_captions(CaptionEncoder(10, 8), CaptionTokenizer(["a", "red"]), ["a red", "red"]); tuple(e.shape)
    (2, 8)
    """
    text = encoder.text if isinstance(encoder, DualEncoder) else encoder
    was = text.training
    text.eval()
    try:
        dev = next(text.parameters()).device
        return text(tokenizer.encode(list(captions)).to(dev)).cpu()
    finally:
        text.train(was)


@torch.no_grad()
def caption_retrieval_accuracy(encoder: DualEncoder, tokenizer: CaptionTokenizer, ds: ShapesDataset) -> float:
    """Zero-shot check of the encoders: for each image of ``ds``, is the most similar of all 160 captions its own?

    Chance is 1/160 ≈ 0.6 %.

    >>> enc = DualEncoder(CaptionEncoder(30, 8), ShapesImageEncoder(8))
    >>> 0.0 <= caption_retrieval_accuracy(enc, CaptionTokenizer.from_captions([c for c, _ in all_captions()]), ShapesDataset(8)) <= 1.0
    True
    """
    captions = [c for c, _ in all_captions()]
    text = embed_captions(encoder, tokenizer, captions)
    was = encoder.training
    encoder.eval()
    try:
        dev = next(encoder.parameters()).device
        img = torch.cat([encoder.image(ds.images[i:i + 512].to(dev)).cpu() for i in range(0, len(ds), 512)])
    finally:
        encoder.train(was)
    best = (img @ text.T).argmax(1)
    truth = torch.tensor([captions.index(c) for c in ds.captions])
    return float((best == truth).float().mean())


def caption_condition(encoder: DualEncoder | CaptionEncoder, tokenizer: CaptionTokenizer,
                      captions: Sequence[str]) -> torch.Tensor:
    """The generator's condition vectors: caption embeddings scaled by √dim.

    The embeddings have unit length, so each of their ``dim`` entries is about 1/√dim — much smaller
    than the entries of z ~ N(0, I) they sit next to at the generator's input. Scaling by √dim puts
    both on the same footing, so the generator cannot start out ignoring the caption.

    >>> tok = CaptionTokenizer.from_captions([c for c, _ in all_captions()])
    >>> round(float(caption_condition(CaptionEncoder(len(tok), 16), tok, ["a small red circle at the top"]).norm()), 3)
    4.0
    """
    emb = embed_captions(encoder, tokenizer, captions)
    return emb * emb.shape[1] ** 0.5


def conditioned_dataset(ds: ShapesDataset, encoder: DualEncoder | CaptionEncoder, tokenizer: CaptionTokenizer) -> TensorDataset:
    """(image, condition vector) pairs for training a caption-conditioned GAN (``GAN(cond_dim=dim)``).

    >>> enc = CaptionEncoder(30, 8); tok = CaptionTokenizer.from_captions([c for c, _ in all_captions()])
    >>> conditioned_dataset(ShapesDataset(4), enc, tok).tensors[1].shape
    torch.Size([4, 8])
    """
    return TensorDataset(ds.images, caption_condition(encoder, tokenizer, ds.captions))


# --------------------------------------------------------------------------- the judge


class AttributeClassifier(nn.Module):
    """Reads colour, shape, size and position off a (B, 3, 32, 32) image: concatenated logits (B, 5 + 4 + 2 + 4).

    >>> AttributeClassifier(width=8)(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 15])
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.net = _conv_trunk(3, width)
        self.head = nn.Linear(4 * width * 16, sum(_HEAD_SIZES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "the attribute classifier's input")
        return self.head(self.net(x))

    @staticmethod
    def split(logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The per-attribute logits of the concatenated output.

        >>> {k: v.shape[1] for k, v in AttributeClassifier.split(torch.zeros(1, 15)).items()}
        {'color': 5, 'shape': 4, 'size': 2, 'position': 4}
        """
        return dict(zip(ATTRIBUTES, logits.split(_HEAD_SIZES, dim=1)))


def attribute_targets(ds: ShapesDataset) -> torch.Tensor:
    """(N, 4) int64 attribute ids (colour, shape, size, position) of every item of ``ds``.

    >>> attribute_targets(ShapesDataset(3)).shape
    torch.Size([3, 4])
    """
    return torch.tensor([[list(COLORS).index(c.color), SHAPES.index(c.shape), SIZES.index(c.size),
                          POSITIONS.index(c.position)] for c in ds.combos], dtype=torch.long)


def _attribute_step(trainer: Trainer, batch: tuple[torch.Tensor, torch.Tensor]) -> dict:
    images, targets = batch
    heads = AttributeClassifier.split(trainer.model(images))
    loss = sum(F.cross_entropy(h, targets[:, i]) for i, h in enumerate(heads.values()))
    return {"loss": loss}


def train_attribute_classifier(train_ds: ShapesDataset, epochs: int = 6, width: int = 16, lr: float = 3e-3,
                               **trainer_kwargs: Any) -> tuple[AttributeClassifier, History]:
    """Train the attribute judge on real shapes with the shared Trainer (sum of four cross-entropies).

    >>> clf, h = train_attribute_classifier(ShapesDataset(32), epochs=1, width=8, progress=False, log=False)
    >>> len(h.epochs)
    1
    """
    model = AttributeClassifier(width)
    trainer = Trainer(model, lr=lr, step_fn=_attribute_step, **trainer_kwargs)
    history = trainer.fit(TensorDataset(train_ds.images, attribute_targets(train_ds)), epochs=epochs)
    return model, history


@torch.no_grad()
def attribute_accuracy(model: AttributeClassifier, images: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Per-attribute accuracy and ``all`` (every attribute right) of ``model`` on ``images`` against ``targets`` (N, 4).

    >>> r = attribute_accuracy(AttributeClassifier(8), torch.rand(4, 3, 32, 32), torch.zeros(4, 4, dtype=torch.long))
    >>> sorted(r)
    ['all', 'color', 'position', 'shape', 'size']
    """
    check_images(images)
    if targets.shape != (len(images), len(ATTRIBUTES)):
        raise ValueError(f"targets must be (N, 4) attribute ids matching {len(images)} images, got {tuple(targets.shape)}")
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    try:
        logits = torch.cat([model(images[i:i + 512].to(dev)).cpu() for i in range(0, len(images), 512)])
    finally:
        model.train(was)
    preds = torch.stack([h.argmax(1) for h in AttributeClassifier.split(logits).values()], dim=1)
    hit = preds == targets.cpu()
    out = {name: float(hit[:, i].float().mean()) for i, name in enumerate(ATTRIBUTES)}
    out["all"] = float(hit.all(1).float().mean())
    return out


# --------------------------------------------------------------------------- generation and scoring


@torch.no_grad()
def generate_from_captions(gan: GAN, encoder: DualEncoder | CaptionEncoder, tokenizer: CaptionTokenizer,
                           captions: Sequence[str], n_each: int = 1, seed: int = 0) -> torch.Tensor:
    """Images in [0, 1] drawn by the caption-conditioned ``gan``: ``n_each`` per caption, caption-major order.

    >>> tok = CaptionTokenizer.from_captions([c for c, _ in all_captions()]); enc = CaptionEncoder(len(tok), 8)
    >>> gan = GAN(latent_dim=8, channels=3, img_size=32, width=8, cond_dim=8)
    >>> generate_from_captions(gan, enc, tok, ["a small red circle at the top"], n_each=2).shape
    torch.Size([2, 3, 32, 32])
    """
    if not captions:
        raise ValueError("no captions given")
    if n_each <= 0:
        raise ValueError(f"n_each must be positive, got {n_each}")
    if gan.cond_size != (encoder.text.dim if isinstance(encoder, DualEncoder) else encoder.dim):
        raise ValueError(f"the GAN is conditioned on {gan.cond_size}-d vectors but the caption encoder gives "
                         f"{encoder.text.dim if isinstance(encoder, DualEncoder) else encoder.dim}-d ones")
    cond = caption_condition(encoder, tokenizer, captions).repeat_interleave(n_each, dim=0)
    return gan.sample(len(cond), cond=cond, generator=torch.Generator().manual_seed(seed)).cpu()


def caption_agreement(gan: GAN, encoder: DualEncoder | CaptionEncoder, tokenizer: CaptionTokenizer,
                      judge: AttributeClassifier, n_each: int = 2, captions: Sequence[tuple[str, dict]] | None = None,
                      seed: int = 0) -> dict[str, Any]:
    """Generate ``n_each`` images for every caption (all 160 by default) and let ``judge`` read their attributes.

    Returns per-attribute agreement (``color``, ``shape``, ``size``, ``position``), ``all`` (the
    image matches the whole caption), and the ``images``/``targets``. Chance for ``all`` is 1/160.

    >>> tok = CaptionTokenizer.from_captions([c for c, _ in all_captions()]); enc = CaptionEncoder(len(tok), 8)
    >>> gan = GAN(latent_dim=8, channels=3, img_size=32, width=8, cond_dim=8)
    >>> r = caption_agreement(gan, enc, tok, AttributeClassifier(8), n_each=1, captions=all_captions()[:3])
    >>> 0.0 <= r["all"] <= 1.0
    True
    """
    captions = list(captions) if captions is not None else all_captions()
    texts = [c for c, _ in captions]
    targets = torch.tensor([[attrs[k] for k in ATTRIBUTES] for _, attrs in captions]).repeat_interleave(n_each, dim=0)
    images = generate_from_captions(gan, encoder, tokenizer, texts, n_each, seed)
    return {**attribute_accuracy(judge, images, targets), "images": images, "targets": targets}
