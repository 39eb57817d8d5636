"""Tests of tutorlib.generative.text2image: tokenizer, caption encoder, the contrastive step, the attribute judge
and caption-conditioned generation on the shapes data."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from tutorlib.data import ShapesDataset
from tutorlib.generative.gan import GAN, train_gan
from tutorlib.generative.text2image import (ATTRIBUTES, AttributeClassifier, CaptionEncoder, CaptionTokenizer,
                                            DualEncoder, ShapesImageEncoder, all_captions, attribute_accuracy,
                                            attribute_targets, caption_agreement, conditioned_dataset,
                                            contrastive_step_fn, embed_captions, generate_from_captions,
                                            train_attribute_classifier, train_caption_encoder)
from tutorlib.train import Trainer


def test_all_captions_and_tokenizer():
    caps = all_captions()
    assert len(caps) == 160 and len({c for c, _ in caps}) == 160
    tok = CaptionTokenizer.from_captions([c for c, _ in caps])
    ids = tok.encode(["a large purple cross on the left", "a zebra"])
    assert ids.shape == (2, 7) and ids[1, 1] == CaptionTokenizer.UNK and ids[1, 2] == 0
    with pytest.raises(ValueError, match="no captions"):
        tok.encode([])


def test_caption_encoder_ignores_padding_and_is_unit_length():
    enc = CaptionEncoder(vocab_size=10, dim=8).eval()
    a = enc(torch.tensor([[2, 3, 4]]))
    b = enc(torch.tensor([[2, 3, 4, 0, 0]]))
    assert torch.allclose(a.norm(dim=1), torch.ones(1), atol=1e-5)
    with pytest.raises(ValueError, match="int64"):
        enc(torch.zeros(2, 3))
    # Padding at the end changes the GRU's backward pass only through masked positions' outputs: the mean ignores them,
    # but the backward direction starts at the padding, so we only require a close, not identical, embedding.
    assert F.cosine_similarity(a, b).item() > 0.5


def test_contrastive_step_is_infonce_and_masks_duplicate_captions():
    torch.manual_seed(0)
    model = DualEncoder(CaptionEncoder(12, 8), ShapesImageEncoder(8)).eval()
    trainer = Trainer(model, step_fn=contrastive_step_fn, progress=False, log=False)
    images = torch.rand(4, 3, 32, 32)
    unique = torch.tensor([[2, 3], [3, 4], [4, 5], [5, 6]])
    out = trainer.compute((images, unique))
    logits = model(images, unique)
    target = torch.arange(4)
    ref = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    assert torch.allclose(out["loss"], ref, atol=1e-6)
    dup = torch.tensor([[2, 3], [2, 3], [4, 5], [5, 6]])
    out = trainer.compute((images, dup))
    assert torch.isinf(out["logits"][0, 1]) and torch.isinf(out["logits"][1, 0]) and torch.isfinite(out["loss"])


def test_caption_encoder_training_lowers_the_loss():
    torch.manual_seed(0)
    enc, tok, history = train_caption_encoder(ShapesDataset(256, seed=1), epochs=3, batch_size=64,
                                              progress=False, log=False)
    assert history["train_loss"][-1] < history["train_loss"][0]
    emb = embed_captions(enc, tok, ["a small red circle at the top", "a large blue square on the left"])
    assert emb.shape == (2, 32)
    assert conditioned_dataset(ShapesDataset(5), enc, tok).tensors[1].shape == (5, 32)


def test_attribute_classifier_learns_colour():
    torch.manual_seed(0)
    train, val = ShapesDataset(384, seed=2), ShapesDataset(128, seed=3)
    clf, history = train_attribute_classifier(train, epochs=3, width=8, progress=False, log=False)
    acc = attribute_accuracy(clf, val.images, attribute_targets(val))
    assert set(acc) == set(ATTRIBUTES) | {"all"}
    assert acc["color"] > 0.8  # colour is the easiest attribute; chance is 0.2
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        attribute_accuracy(clf, val.images, torch.zeros(3, 4, dtype=torch.long))


def test_generation_and_agreement_shapes():
    tok = CaptionTokenizer.from_captions([c for c, _ in all_captions()])
    enc = CaptionEncoder(len(tok), 8)
    gan = GAN(latent_dim=8, channels=3, img_size=32, width=8, cond_dim=8)
    data = conditioned_dataset(ShapesDataset(32), enc, tok)
    run = train_gan(gan, data, epochs=1, batch_size=16, progress=False, log=False)
    assert len(run.log) == 2
    imgs = generate_from_captions(gan, enc, tok, ["a small red circle at the top"] * 2, n_each=3)
    assert imgs.shape == (6, 3, 32, 32)
    r = caption_agreement(gan, enc, tok, AttributeClassifier(8), n_each=1, captions=all_captions()[:5])
    assert r["targets"].shape == (5, 4) and 0.0 <= r["all"] <= 1.0
    with pytest.raises(ValueError, match="conditioned on 4-d vectors but the caption encoder gives 8-d"):
        generate_from_captions(GAN(latent_dim=8, channels=3, img_size=32, width=8, cond_dim=4), enc, tok, ["a"])
