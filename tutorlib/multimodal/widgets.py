"""The retrieval explorer widget: type a caption → see the most similar images; pick an image → see its best captions.

The logic lives in plain functions (:func:`top_images_for_text`, :func:`top_texts_for_image`) that
tests call directly; :class:`RetrievalExplorer` wires them to ipywidgets and draws into
``Output`` areas.

>>> import matplotlib; matplotlib.use("Agg")
>>> from tutorlib.multimodal import build_caption_tokenizer, build_clip, retrieval_explorer
>>> from tutorlib.data import ShapesDataset
>>> tok = build_caption_tokenizer(); model = build_clip(tok, width=32, layers=1)
>>> ds = ShapesDataset(12)
>>> box = retrieval_explorer(model, tok, ds.images, ds.captions)
>>> box.explorer.search("a large blue square on the left")["indices"].shape
torch.Size([6])
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from tutorlib.multimodal.clip import encode_images, encode_texts, to_pixel_values
from tutorlib.retrieval import cosine_top_k
from tutorlib.widgets import redraw

__all__ = ["unknown_words", "top_images_for_text", "top_texts_for_image", "RetrievalExplorer", "retrieval_explorer"]


def unknown_words(tokenizer: Any, text: str) -> list[str]:
    """Words of ``text`` the tokenizer maps to its unknown token (the model cannot read them).

    >>> from tutorlib.multimodal import build_caption_tokenizer
    >>> unknown_words(build_caption_tokenizer(), "a huge red circle")
    ['huge']
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return []
    return [w for w in text.split() if unk in tokenizer(w, add_special_tokens=False)["input_ids"]]


def top_images_for_text(text: str, model: Any, tokenizer: Any, image_emb: torch.Tensor, k: int = 6) -> dict[str, Any]:
    """The ``k`` images most similar to ``text``: ``{"indices", "scores", "unknown"}`` (cosine similarities).

    >>> from tutorlib.multimodal import build_caption_tokenizer, build_clip
    >>> tok = build_caption_tokenizer(); m = build_clip(tok, width=32, layers=1)
    >>> top_images_for_text("a red circle", m, tok, torch.nn.functional.normalize(torch.randn(5, 64), dim=-1), k=2)["indices"].shape
    torch.Size([2])
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("type a caption first, e.g. 'a small red circle at the top'")
    query = encode_texts(model, tokenizer, [text])[0]
    top = cosine_top_k(query, image_emb, max(1, int(k)))
    return {"indices": top.indices, "scores": top.values, "unknown": unknown_words(tokenizer, text)}


def top_texts_for_image(index: int, image_emb: torch.Tensor, text_emb: torch.Tensor, texts: Sequence[str],
                        k: int = 6) -> dict[str, Any]:
    """The ``k`` texts most similar to image ``index``: ``{"texts", "scores", "indices"}``.

    >>> e = torch.eye(3)
    >>> top_texts_for_image(1, e, e, ["x", "y", "z"], k=1)["texts"]
    ['y']
    """
    if not 0 <= index < image_emb.shape[0]:
        raise IndexError(f"image index {index} is out of range 0..{image_emb.shape[0] - 1}")
    if len(texts) != text_emb.shape[0]:
        raise ValueError(f"got {len(texts)} texts for {text_emb.shape[0]} text embeddings")
    top = cosine_top_k(image_emb[index], text_emb, max(1, int(k)))
    return {"texts": [texts[i] for i in top.indices.tolist()], "scores": top.values, "indices": top.indices}


def _as_hwc(image: torch.Tensor) -> np.ndarray:
    img = image.detach().float().clamp(0, 1).cpu()
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return img.permute(1, 2, 0).numpy()


class RetrievalExplorer:
    """Two linked panels over one image collection: text → images and image → captions.

    ``images`` (N, 1|3, H, W) in [0, 1]; ``captions`` are the candidate texts ranked for a picked
    image (their unique values are used). Attributes ``last_search`` and ``last_image`` hold the
    latest results; ``box`` is the widget to display.
    """

    def __init__(self, model: Any, tokenizer: Any, images: torch.Tensor, captions: Sequence[str],
                 k: int = 6, query: str = "a large blue square on the left", true_captions: Sequence[str] | None = None) -> None:
        import ipywidgets as w

        if images.dim() != 4 or images.shape[0] == 0:
            raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
        if true_captions is not None and len(true_captions) != len(images):
            raise ValueError(f"got {len(true_captions)} true captions for {len(images)} images")
        self.model, self.tokenizer, self.images = model, tokenizer, images
        self.true_captions = list(true_captions) if true_captions is not None else None
        self.texts = list(dict.fromkeys(captions))
        size = model.config.vision_config.image_size
        self.image_emb = encode_images(model, to_pixel_values(images, size))
        self.text_emb = encode_texts(model, tokenizer, self.texts)
        self.last_search: dict[str, Any] | None = None
        self.last_image: dict[str, Any] | None = None

        self.query = w.Text(value=query, description="caption:", continuous_update=False,
                            layout=w.Layout(width="55%"))
        self.button = w.Button(description="Search images", button_style="primary")
        self.k = w.IntSlider(value=k, min=1, max=min(12, len(images)), description="top k:")
        self.image_index = w.IntSlider(value=0, min=0, max=len(images) - 1, description="image #:",
                                       continuous_update=False, layout=w.Layout(width="60%"))
        self.out_images = w.Output()
        self.out_captions = w.Output()
        self.button.on_click(lambda _: self.search(self.query.value))
        self.query.observe(lambda ch: self.search(ch["new"]), names="value")
        self.k.observe(lambda ch: (self.search(self.query.value), self.show_image(self.image_index.value)), names="value")
        self.image_index.observe(lambda ch: self.show_image(ch["new"]), names="value")
        self.box = w.VBox([
            w.HTML("<b>Text → images</b>: type a caption (words the model knows: colours, shapes, sizes, "
                   "positions) and press Enter or the button."),
            w.HBox([self.query, self.button, self.k]), self.out_images,
            w.HTML("<b>Image → captions</b>: pick an image; the bars are cosine similarities."),
            self.image_index, self.out_captions,
        ])
        self.box.add_class("tutorlib-widget")
        self.box.explorer = self  # type: ignore[attr-defined]
        self.search(query)
        self.show_image(0)

    def search(self, text: str) -> dict[str, Any] | None:
        """Rank the images for ``text`` and draw the top k; returns the result (None for an empty query)."""
        if not text.strip():
            redraw(self.out_images, "type a caption first")
            return None
        res = top_images_for_text(text, self.model, self.tokenizer, self.image_emb, self.k.value)
        self.last_search = dict(res, query=text)
        note = f"unknown words (read as [UNK]): {', '.join(res['unknown'])}" if res["unknown"] else ""
        n = len(res["indices"])
        fig, axes = plt.subplots(1, n, figsize=(1.6 * n, 2.0), squeeze=False)
        for ax, i, s in zip(axes[0], res["indices"].tolist(), res["scores"].tolist()):
            ax.imshow(_as_hwc(self.images[i]))
            ax.set_title(f"#{i}\ncos {s:.2f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"top {n} images for “{text}”", fontsize=9)
        fig.tight_layout()
        redraw(self.out_images, *([note] if note else []), fig)
        return self.last_search

    def show_image(self, index: int) -> dict[str, Any]:
        """Draw image ``index`` and a bar chart of its k best captions; returns the ranking."""
        res = top_texts_for_image(int(index), self.image_emb, self.text_emb, self.texts, self.k.value)
        self.last_image = dict(res, index=int(index))
        fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(8.5, 2.4), gridspec_kw={"width_ratios": [1, 3]})
        ax_img.imshow(_as_hwc(self.images[index]))
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        truth = f"\ntrue: {self.true_captions[index]}" if self.true_captions else ""
        ax_img.set_title(f"image #{index}{truth}", fontsize=8)
        ys = np.arange(len(res["texts"]))[::-1]
        colours = ["tab:green" if self.true_captions and t == self.true_captions[index] else "tab:blue"
                   for t in res["texts"]]
        ax_bar.barh(ys, res["scores"].numpy(), color=colours)
        ax_bar.set_yticks(ys, res["texts"], fontsize=8)
        ax_bar.set_xlabel("cosine similarity")
        ax_bar.set_title("best captions" + (" (green = the true one)" if self.true_captions else ""), fontsize=9)
        fig.tight_layout()
        redraw(self.out_captions, fig)
        return self.last_image


def retrieval_explorer(model: Any, tokenizer: Any, images: torch.Tensor, captions: Sequence[str], k: int = 6,
                       query: str = "a large blue square on the left", true_captions: Sequence[str] | None = None):
    """Build the explorer and return its widget container (``.explorer`` is the :class:`RetrievalExplorer`).

    >>> from tutorlib.multimodal import build_caption_tokenizer, build_clip
    >>> tok = build_caption_tokenizer(); m = build_clip(tok, width=32, layers=1)
    >>> box = retrieval_explorer(m, tok, torch.rand(4, 3, 32, 32), ["a red circle", "a blue cross"])
    >>> "tutorlib-widget" in box._dom_classes
    True
    """
    return RetrievalExplorer(model, tokenizer, images, captions, k=k, query=query, true_captions=true_captions).box
