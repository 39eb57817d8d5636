"""Pretrained CLIP: load a ``CLIPModel`` + processor from a local folder or the hub, and sample photos to try it on.

Offline (no network, or ``HF_HUB_OFFLINE=1``) a hub id fails within seconds with
:class:`~tutorlib.data.hub.HubUnavailable`, naming what runs instead: the small CLIP trained in the
lesson, saved with :func:`save_clip` and loaded back with :func:`load_clip` from its folder.

To use OpenAI's CLIP: online, ``load_clip("openai/clip-vit-base-patch32")`` (≈600 MB download,
cached by ``huggingface_hub``); or on a connected machine run
``CLIPModel.from_pretrained(id).save_pretrained(folder)`` and
``CLIPProcessor.from_pretrained(id).save_pretrained(folder)``, copy the folder over, and call
``load_clip(folder)``.

>>> import os; os.environ["HF_HUB_OFFLINE"] = "1"
>>> from tutorlib.multimodal.load import load_clip
>>> try: load_clip("openai/clip-vit-base-patch32")
... except Exception as e: print(type(e).__name__)
HubUnavailable
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tutorlib.data.hub import looks_like_hub_id, require_hub

__all__ = ["DEFAULT_CLIP_ID", "OFFLINE_FALLBACK", "load_clip", "save_clip", "PHOTO_LABELS", "sample_photos",
           "photo_zero_shot"]

#: The pretrained CLIP the lesson uses when the hub can be reached (ViT-B/32, 151M parameters).
DEFAULT_CLIP_ID = "openai/clip-vit-base-patch32"
#: What the lesson runs instead when pretrained weights cannot be had.
OFFLINE_FALLBACK = ("the small CLIP trained from scratch in this lesson: save it with "
                    "tutorlib.multimodal.save_clip(model, tokenizer, folder) and load it with load_clip(folder)")


def load_clip(hub_id_or_path: str | Path = DEFAULT_CLIP_ID, device: str | torch.device | None = None,
              dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """Load a pretrained ``CLIPModel`` (in eval mode) and its processor from a local folder or a hub id.

    A folder must hold ``config.json`` plus the weights and the processor files (what
    ``save_pretrained`` writes). A hub id needs the network: offline it raises
    :class:`~tutorlib.data.hub.HubUnavailable` at once, naming :data:`OFFLINE_FALLBACK`.

    >>> import tempfile
    >>> from tutorlib.multimodal import build_caption_tokenizer, build_clip
    >>> tok = build_caption_tokenizer(); folder = tempfile.mkdtemp()
    >>> save_clip(build_clip(tok, width=32, layers=1), tok, folder)
    >>> model, processor = load_clip(folder); type(model).__name__
    'CLIPModel'
    """
    from transformers import AutoProcessor, CLIPModel

    from tutorlib.runtime import get_device

    if not isinstance(hub_id_or_path, (str, Path)) or not str(hub_id_or_path).strip():
        raise TypeError(f"expected a hub id like {DEFAULT_CLIP_ID!r} or a folder path, got {hub_id_or_path!r}")
    source = str(hub_id_or_path)
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} is not a saved CLIP folder (no config.json): create one with save_clip(model, tokenizer, "
                "folder) or with model.save_pretrained(folder) and processor.save_pretrained(folder)")
        if not (path / "preprocessor_config.json").is_file() and not (path / "processor_config.json").is_file():
            raise FileNotFoundError(f"{path} has model weights but no processor files: also call "
                                    "processor.save_pretrained(folder) (save_clip does both)")
        source = str(path)
    elif not looks_like_hub_id(source):
        raise FileNotFoundError(f"{source!r} is neither an existing folder nor a hub id such as {DEFAULT_CLIP_ID!r}")
    else:
        require_hub(source, OFFLINE_FALLBACK)
    model = CLIPModel.from_pretrained(source, dtype=dtype)
    processor = AutoProcessor.from_pretrained(source)
    return model.to(get_device(device)).eval(), processor


def save_clip(model: Any, tokenizer: Any, folder: str | Path, image_size: int | None = None,
              mean: float = 0.5, std: float = 0.5) -> None:
    """Save a CLIP trained in the lesson with a matching ``CLIPProcessor``, so :func:`load_clip` can load it.

    The processor resizes to ``image_size`` (default: the model's), rescales to [0, 1] and
    normalises with ``mean``/``std`` — the same preprocessing as :func:`~tutorlib.multimodal.clip.to_pixel_values`
    for images already at that size.

    >>> import tempfile
    >>> from tutorlib.multimodal import build_caption_tokenizer, build_clip
    >>> tok = build_caption_tokenizer(); save_clip(build_clip(tok, width=32, layers=1), tok, tempfile.mkdtemp())
    """
    from transformers import CLIPImageProcessorPil, CLIPProcessor

    size = int(image_size or model.config.vision_config.image_size)
    images = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                   image_mean=[mean] * 3, image_std=[std] * 3)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)


#: scikit-image's bundled sample photos (no download needed) and a label for each.
PHOTO_LABELS = {
    "astronaut": "an astronaut",
    "coffee": "a cup of coffee",
    "chelsea": "a cat",
    "rocket": "a rocket",
    "camera": "a man with a camera",
    "horse": "a horse",
    "coins": "coins",
    "hubble_deep_field": "galaxies in space",
    "clock": "a clock",
    "page": "a page of text",
    "moon": "the moon",
    "brick": "a brick wall",
}


def sample_photos(names: Sequence[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """scikit-image sample photos as ``(name, H×W×3 uint8 array)`` (grey ones repeated over 3 channels).

    >>> photos = sample_photos(["astronaut", "camera"]); [(n, p.shape[-1]) for n, p in photos]
    [('astronaut', 3), ('camera', 3)]
    """
    import skimage.data

    names = list(PHOTO_LABELS) if names is None else list(names)
    out = []
    for name in names:
        loader = getattr(skimage.data, name, None)
        if loader is None or name not in PHOTO_LABELS:
            raise ValueError(f"unknown sample photo {name!r}: choose from {', '.join(PHOTO_LABELS)}")
        img = np.asarray(loader())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float64) / max(float(img.max()), 1e-8))).astype(np.uint8)
        out.append((name, img))
    return out


@torch.no_grad()
def photo_zero_shot(model: Any, processor: Any, images: Sequence[np.ndarray], labels: Sequence[str],
                    templates: Sequence[str] = ("a photo of {}.",)) -> torch.Tensor:
    """Zero-shot probabilities (N images, C labels) with a model and processor from :func:`load_clip`.

    Text embeddings are averaged over ``templates`` (prompt ensembling); probabilities are the
    softmax of the model's scaled cosine similarities.

    >>> import tempfile
    >>> from tutorlib.multimodal import build_caption_tokenizer, build_clip
    >>> tok = build_caption_tokenizer(); folder = tempfile.mkdtemp()
    >>> save_clip(build_clip(tok, width=32, layers=1), tok, folder); m, p = load_clip(folder)
    >>> photo_zero_shot(m, p, [np.zeros((40, 40, 3), np.uint8)], ["red circle", "blue cross"], ["a {}"]).shape
    torch.Size([1, 2])
    """
    from torch.nn import functional as F

    from tutorlib.multimodal.zeroshot import zero_shot_weights

    if len(images) == 0 or len(labels) == 0:
        raise ValueError("need at least one image and one label")
    device = next(model.parameters()).device

    def encode_text(texts: list[str]) -> torch.Tensor:
        enc = processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        return model.get_text_features(input_ids=enc["input_ids"].to(device),
                                       attention_mask=enc["attention_mask"].to(device)).pooler_output.float().cpu()

    weights = zero_shot_weights(encode_text, labels, templates)
    pixels = processor(images=list(images), return_tensors="pt")["pixel_values"].to(device, model.dtype)
    image_emb = F.normalize(model.get_image_features(pixel_values=pixels).pooler_output.float().cpu(), dim=-1)
    scale = float(model.logit_scale.detach().exp().cpu())
    return (scale * image_emb @ weights.t()).softmax(dim=-1)
