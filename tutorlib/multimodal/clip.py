"""A small ``transformers.CLIPModel`` sized for a CPU, its word-level caption tokenizer, and the contrastive step.

CLIP = an image tower (a ViT) + a text tower (a causal Transformer), each followed by a linear
projection into one shared space, trained so that matching (image, caption) pairs have the
highest cosine similarity in the batch. Everything here is the real ``transformers`` model, built
from ``CLIPConfig`` instead of downloaded, so it trains in minutes on a laptop.

>>> from tutorlib.multimodal.clip import build_caption_tokenizer, build_clip, clip_collate, contrastive_step
>>> tok = build_caption_tokenizer()
>>> model = build_clip(tok, width=32, layers=1)
>>> from tutorlib.data import ShapesDataset
>>> batch = clip_collate(tok, image_size=32)([ShapesDataset(4)[i] for i in range(4)])
>>> sorted(batch)
['attention_mask', 'input_ids', 'pixel_values']
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from tutorlib.multimodal.captions import caption_vocabulary
from tutorlib.multimodal.loss import MAX_LOGIT_SCALE, info_nce

__all__ = [
    "SPECIAL_TOKENS", "build_caption_tokenizer", "small_clip_config", "build_clip", "to_pixel_values",
    "clip_collate", "contrastive_step", "pair_logits", "encode_texts", "encode_images", "embed_pairs", "tower_parameters",
]

#: Special tokens of the caption tokenizer, with their ids. EOS is deliberately not id 2: for
#: ``eos_token_id == 2`` transformers' CLIP falls back to a legacy rule (pool at the largest id).
SPECIAL_TOKENS = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3}


def build_caption_tokenizer(words: Sequence[str] | None = None, max_length: int = 24):
    """A word-level ``PreTrainedTokenizerFast`` over ``words`` (default: :func:`caption_vocabulary`).

    Text is lower-cased and split on whitespace/punctuation; every sequence becomes
    ``[BOS] w1 … wn [EOS]`` (EOS survives truncation), padded with ``[PAD]``; unknown words map to
    ``[UNK]``. CLIP's text tower pools the hidden state at the first EOS, so every caption must
    contain it — this tokenizer guarantees that.

    >>> tok = build_caption_tokenizer(["a", "red", "circle"])
    >>> tok("a red circle")["input_ids"]
    [2, 4, 5, 6, 3]
    >>> tok.convert_ids_to_tokens(tok("a blue circle")["input_ids"])
    ['[BOS]', 'a', '[UNK]', 'circle', '[EOS]']
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if max_length < 3:
        raise ValueError(f"max_length must leave room for [BOS], a word and [EOS], got {max_length}")
    words = caption_vocabulary() if words is None else list(words)
    vocab = dict(SPECIAL_TOKENS)
    for w in words:
        if not isinstance(w, str) or not w.strip() or len(w.split()) != 1:
            raise ValueError(f"vocabulary entries must be single words, got {w!r}")
        vocab.setdefault(w.lower(), len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", SPECIAL_TOKENS["[BOS]"]), ("[EOS]", SPECIAL_TOKENS["[EOS]"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]",
                                   eos_token="[EOS]", model_max_length=max_length)


def small_clip_config(vocab_size: int, *, eos_token_id: int = SPECIAL_TOKENS["[EOS]"],
                      pad_token_id: int = SPECIAL_TOKENS["[PAD]"], bos_token_id: int = SPECIAL_TOKENS["[BOS]"],
                      image_size: int = 32, patch_size: int = 4, num_channels: int = 3, width: int = 64,
                      layers: int = 2, heads: int = 4, projection_dim: int = 64, max_length: int = 24,
                      temperature: float = 0.07):
    """A ``CLIPConfig`` with both towers ``layers`` deep and ``width`` wide (MLP 4× wider), for a CPU.

    >>> cfg = small_clip_config(50)
    >>> cfg.vision_config.image_size, cfg.text_config.eos_token_id, cfg.projection_dim
    (32, 3, 64)
    """
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    if image_size % patch_size:
        raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
    if width % heads:
        raise ValueError(f"width ({width}) must be divisible by heads ({heads})")
    if eos_token_id == 2:
        raise ValueError("eos_token_id=2 switches transformers' CLIP to a legacy pooling rule (argmax of the ids): "
                         "give EOS another id")
    if not 0 <= eos_token_id < vocab_size:
        raise ValueError(f"eos_token_id {eos_token_id} is outside the vocabulary (size {vocab_size})")
    text = CLIPTextConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=4 * width,
                          num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=max_length,
                          eos_token_id=eos_token_id, pad_token_id=pad_token_id, bos_token_id=bos_token_id,
                          projection_dim=projection_dim)
    vision = CLIPVisionConfig(image_size=image_size, patch_size=patch_size, num_channels=num_channels,
                              hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                              num_attention_heads=heads, projection_dim=projection_dim)
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection_dim,
                      logit_scale_init_value=math.log(1.0 / temperature))


def build_clip(tokenizer: Any, *, image_size: int = 32, patch_size: int = 4, width: int = 64, layers: int = 2,
               heads: int = 4, projection_dim: int = 64, temperature: float = 0.07, seed: int | None = None):
    """A freshly initialised ``transformers.CLIPModel`` whose text tower matches ``tokenizer``.

    ``seed`` makes the initial weights reproducible without touching the global random state.

    >>> tok = build_caption_tokenizer()
    >>> m = build_clip(tok, width=32, layers=1, seed=0)
    >>> m.config.text_config.vocab_size == len(tok)
    True
    """
    from transformers import CLIPModel

    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("the tokenizer has no eos_token_id: CLIP pools text at the EOS token, so the tokenizer "
                         "must add one to every sequence (use build_caption_tokenizer())")
    config = small_clip_config(len(tokenizer), eos_token_id=eos, pad_token_id=tokenizer.pad_token_id or 0,
                               bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos,
                               image_size=image_size, patch_size=patch_size, width=width, layers=layers, heads=heads,
                               projection_dim=projection_dim, max_length=int(tokenizer.model_max_length),
                               temperature=temperature)
    if seed is None:
        return CLIPModel(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPModel(config)


def to_pixel_values(images: torch.Tensor, image_size: int, mean: float = 0.5, std: float = 0.5) -> torch.Tensor:
    """Images in [0, 1] of shape (B, 1|3, H, W) → CLIP input (B, 3, image_size, image_size), normalised.

    Grey images are repeated over 3 channels; other sizes are resized bilinearly (8×8 digits are
    upsampled to the vision tower's size).

    >>> to_pixel_values(torch.rand(2, 1, 8, 8), 32).shape
    torch.Size([2, 3, 32, 32])
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape (B, 1 or 3, H, W) in [0, 1], got {got}: stack single images first")
    x = images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return (x - mean) / std


def clip_collate(tokenizer: Any, image_size: int = 32, max_length: int | None = None) -> Callable[[Sequence[Any]], dict]:
    """Collate ``{"image", "caption"}`` dicts (or ``(image, caption)`` pairs) into a CLIP batch.

    Returns ``{"pixel_values", "input_ids", "attention_mask"}``: use it as the Trainer's ``collate_fn``.

    >>> tok = build_caption_tokenizer()
    >>> b = clip_collate(tok, 32)([(torch.rand(1, 8, 8), "the number seven"), (torch.rand(1, 8, 8), "a handwritten one")])
    >>> b["pixel_values"].shape, b["input_ids"].shape
    (torch.Size([2, 3, 32, 32]), torch.Size([2, 5]))
    """
    limit = max_length or int(getattr(tokenizer, "model_max_length", 64))

    def collate(items: Sequence[Any]) -> dict:
        if not items:
            raise ValueError("cannot collate an empty batch")
        if isinstance(items[0], dict):
            if "image" not in items[0] or "caption" not in items[0]:
                raise ValueError(f"items must have 'image' and 'caption' keys, got {sorted(items[0])}")
            images, captions = [it["image"] for it in items], [it["caption"] for it in items]
        else:
            images, captions = [it[0] for it in items], [it[1] for it in items]
        if not all(isinstance(c, str) for c in captions):
            raise TypeError("every caption must be a str")
        enc = tokenizer(list(captions), padding=True, truncation=True, max_length=limit, return_tensors="pt")
        return {"pixel_values": to_pixel_values(torch.stack(images), image_size),
                "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    return collate


def contrastive_step(trainer: Any, batch: dict) -> dict:
    """``step_fn`` for :class:`tutorlib.train.Trainer`: CLIP forward pass + symmetric InfoNCE.

    Clamps the learnable logit scale at log(100) as CLIP does and returns the loss. For the
    Trainer's "accuracy" it also returns, per image, two logits — its own caption's and the best
    *other* caption's — with target 0: accuracy is then the fraction of images whose caption beats
    every other caption in the batch (in-batch top-1; a duplicate caption ties and counts as
    correct). This (B, 2) form also works when the last batch is smaller.

    >>> from types import SimpleNamespace
    >>> tok = build_caption_tokenizer(); m = build_clip(tok, width=32, layers=1)
    >>> b = clip_collate(tok)([(torch.rand(3, 32, 32), "a red circle"), (torch.rand(3, 32, 32), "a blue cross")])
    >>> out = contrastive_step(SimpleNamespace(model=m), b); out["logits"].shape, out["loss"].requires_grad
    (torch.Size([2, 2]), True)
    """
    model = trainer.model
    core = getattr(trainer, "unwrapped_model", model)
    if not hasattr(core, "logit_scale"):
        raise TypeError(f"contrastive_step expects a CLIPModel (with .logit_scale), got {type(core).__name__}")
    missing = {"pixel_values", "input_ids", "attention_mask"} - set(batch)
    if missing:
        raise ValueError(f"the batch lacks {sorted(missing)}: pass collate_fn=clip_collate(tokenizer, image_size)")
    with torch.no_grad():
        core.logit_scale.clamp_(max=MAX_LOGIT_SCALE)
    out = model(pixel_values=batch["pixel_values"], input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"])
    logits = out.logits_per_image
    return {"loss": info_nce(logits), **pair_logits(logits.detach())}


def pair_logits(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"logits": (B, 2) [own caption, best other caption], "targets": zeros}`` from (B, B) image→text logits.

    >>> pair_logits(torch.tensor([[3.0, 1.0], [0.0, 2.0]]))["logits"]
    tensor([[3., 1.],
            [2., 0.]])
    """
    n = logits.shape[0]
    diag = logits.diagonal()
    if n == 1:
        other = torch.full_like(diag, float("-inf"))
    else:
        eye = torch.eye(n, dtype=torch.bool, device=logits.device)
        other = logits.masked_fill(eye, float("-inf")).amax(dim=1)
    return {"logits": torch.stack([diag, other], dim=1),
            "targets": torch.zeros(n, dtype=torch.long, device=logits.device)}


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_texts(model: nn.Module, tokenizer: Any, texts: Sequence[str], batch_size: int = 256,
                 normalize: bool = True) -> torch.Tensor:
    """Projected (and by default L2-normalised) text embeddings (N, D), float32 on the CPU.

    >>> tok = build_caption_tokenizer(); m = build_clip(tok, width=32, layers=1)
    >>> encode_texts(m, tok, ["a red circle", "the number two"]).shape
    torch.Size([2, 64])
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got one str: wrap it in a list")
    if len(texts) == 0:
        raise ValueError("texts is empty")
    was_training = model.training
    model.eval()
    device = _device_of(model)
    chunks = []
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True, return_tensors="pt")
            out = model.get_text_features(input_ids=enc["input_ids"].to(device),
                                          attention_mask=enc["attention_mask"].to(device))
            chunks.append(out.pooler_output.float().cpu())
    finally:
        model.train(was_training)
    emb = torch.cat(chunks)
    return F.normalize(emb, dim=-1) if normalize else emb


@torch.no_grad()
def encode_images(model: nn.Module, pixel_values: torch.Tensor, batch_size: int = 256,
                  normalize: bool = True) -> torch.Tensor:
    """Projected (and by default L2-normalised) image embeddings (N, D) from CLIP ``pixel_values``.

    >>> tok = build_caption_tokenizer(); m = build_clip(tok, width=32, layers=1)
    >>> encode_images(m, to_pixel_values(torch.rand(3, 3, 32, 32), 32)).shape
    torch.Size([3, 64])
    """
    expected = model.config.vision_config.image_size
    if pixel_values.dim() != 4 or pixel_values.shape[1] != 3 or pixel_values.shape[-1] != expected:
        raise ValueError(f"expected pixel_values (N, 3, {expected}, {expected}), got {tuple(pixel_values.shape)}: "
                         "convert images with to_pixel_values(images, image_size) (or the model's processor)")
    was_training = model.training
    model.eval()
    device = _device_of(model)
    chunks = []
    try:
        for i in range(0, len(pixel_values), batch_size):
            out = model.get_image_features(pixel_values=pixel_values[i:i + batch_size].to(device))
            chunks.append(out.pooler_output.float().cpu())
    finally:
        model.train(was_training)
    emb = torch.cat(chunks)
    return F.normalize(emb, dim=-1) if normalize else emb


def embed_pairs(model: nn.Module, tokenizer: Any, dataset: Any, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Normalised image and caption embeddings of every item of a captioned dataset, plus the captions.

    >>> from tutorlib.data import ShapesDataset
    >>> tok = build_caption_tokenizer(); m = build_clip(tok, width=32, layers=1)
    >>> img, txt, caps = embed_pairs(m, tok, ShapesDataset(5)); img.shape == txt.shape, len(caps)
    (True, 5)
    """
    items = [dataset[i] for i in range(len(dataset))]
    if not items or not isinstance(items[0], dict) or "image" not in items[0]:
        raise ValueError("expected a non-empty dataset of {'image', 'caption'} dicts (ShapesDataset, DigitCaptions)")
    images = torch.stack([it["image"] for it in items])
    captions = [it["caption"] for it in items]
    pixels = to_pixel_values(images, model.config.vision_config.image_size)
    return (encode_images(model, pixels, batch_size), encode_texts(model, tokenizer, captions, batch_size), captions)


def tower_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts of the vision tower, the text tower, the projections and the total.

    >>> tok = build_caption_tokenizer(); sorted(tower_parameters(build_clip(tok, width=32, layers=1)))
    ['projections', 'text', 'total', 'vision']
    """
    def n(mod: nn.Module) -> int:
        return sum(p.numel() for p in mod.parameters())

    return {"vision": n(model.vision_model), "text": n(model.text_model),
            "projections": n(model.visual_projection) + n(model.text_projection),
            "total": n(model)}
