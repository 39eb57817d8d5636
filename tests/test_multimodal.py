"""tutorlib.multimodal: InfoNCE vs transformers' CLIP loss, the small CLIP and its tokenizer, training, zero-shot,
retrieval, loading (offline), plots and the retrieval widget."""

from __future__ import annotations

import math
import time

import matplotlib
import pytest
import torch
import torch.nn.functional as F

matplotlib.use("Agg")

from tutorlib.data import ShapesDataset  # noqa: E402
from tutorlib.data.hub import HubUnavailable  # noqa: E402
from tutorlib.multimodal import (  # noqa: E402
    DIGIT_TEMPLATES, NUMBER_WORDS, OFFLINE_FALLBACK, SHAPE_CLASSNAMES, SHAPE_TEMPLATES, SPECIAL_TOKENS,
    DigitCaptions, InfoNCELoss, build_caption_tokenizer, build_clip, caption_positives, chance_recall_at_k,
    clip_collate, contrastive_logits, contrastive_loss, contrastive_step, embed_pairs, encode_images,
    encode_texts, held_out_classnames, info_nce, load_clip, pair_logits, photo_zero_shot, plot_accuracy_bars,
    plot_joint_embedding, plot_photo_zero_shot, plot_similarity_matrix, recall_at_k, retrieval_explorer,
    retrieval_report, sample_photos, save_clip, shape_class_index, shape_labels, shapes_zero_shot,
    small_clip_config, to_pixel_values, top_images_for_text, top_texts_for_image, unknown_words,
    zero_shot_accuracy, zero_shot_predict, zero_shot_weights,
)
from tutorlib.train import Trainer  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return build_caption_tokenizer()


@pytest.fixture(scope="module")
def tiny(tok):
    return build_clip(tok, width=32, layers=1, heads=2, patch_size=8, projection_dim=16, seed=0)


# --------------------------------------------------------------------------- InfoNCE


def test_info_nce_matches_transformers_clip_loss_on_the_same_logits():
    from transformers.models.clip.modeling_clip import image_text_contrastive_loss

    g = torch.Generator().manual_seed(0)
    for b in (2, 7, 32):
        logits = torch.randn(b, b, generator=g) * 5
        ours, theirs = info_nce(logits), image_text_contrastive_loss(logits)
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(info_nce(logits.t()), ours)  # symmetric


def test_contrastive_loss_equals_clipmodel_return_loss(tok, tiny):
    ds = ShapesDataset(6, seed=3)
    batch = clip_collate(tok, 32)([ds[i] for i in range(6)])
    with torch.no_grad():
        out = tiny(**batch, return_loss=True)
        # from raw projected embeddings, with the model's own learnable temperature
        img = tiny.get_image_features(pixel_values=batch["pixel_values"]).pooler_output
        txt = tiny.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
        ours = contrastive_loss(img, txt, tiny.logit_scale)
    torch.testing.assert_close(ours, out.loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(info_nce(out.logits_per_image), out.loss, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(contrastive_logits(img, txt, tiny.logit_scale), out.logits_per_image, atol=1e-5, rtol=1e-5)


def test_info_nce_values_and_bad_input():
    assert info_nce(torch.zeros(5, 5)).item() == pytest.approx(math.log(5))
    assert info_nce(torch.eye(4) * 50).item() < 1e-6
    with pytest.raises(ValueError, match=r"square logits \(B, B\)"):
        info_nce(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="tensor of logits"):
        info_nce([[1.0]])
    with pytest.raises(ValueError, match="share their width"):
        contrastive_loss(torch.zeros(3, 4), torch.zeros(3, 5), 0.0)
    with pytest.raises(ValueError, match="as many images as texts"):
        contrastive_loss(torch.zeros(3, 4), torch.zeros(2, 4), 0.0)
    with pytest.raises(ValueError, match=r"image_emb of shape \(B, D\)"):
        contrastive_logits(torch.zeros(3), torch.zeros(3, 4), 0.0)


def test_learnable_temperature_trains_and_is_clamped():
    loss_fn = InfoNCELoss(temperature=0.07)
    assert loss_fn.temperature == pytest.approx(0.07, rel=1e-5)
    emb = F.normalize(torch.randn(16, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    opt = torch.optim.SGD(loss_fn.parameters(), lr=0.5)
    first = None
    for _ in range(30):  # perfectly aligned pairs: a lower temperature (sharper softmax) lowers the loss
        loss = loss_fn(emb, emb)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    assert loss_fn.temperature < 0.07
    loss_fn.logit_scale.data.fill_(10.0)  # exp(10) ≫ 100: clamped
    assert loss_fn.temperature == pytest.approx(0.01)
    with pytest.raises(ValueError, match="temperature must be positive"):
        InfoNCELoss(temperature=0)


# --------------------------------------------------------------------------- tokenizer and model


def test_tokenizer_always_ends_with_eos_and_marks_unknown_words(tok):
    eos = tok.eos_token_id
    assert eos == SPECIAL_TOKENS["[EOS]"] != 2
    enc = tok(["a small red circle at the top", "the number seven", "A HUGE Red circle!"], padding=True)
    for ids, mask in zip(enc["input_ids"], enc["attention_mask"]):
        n = sum(mask)
        assert ids[0] == tok.bos_token_id and ids[n - 1] == eos and ids.count(eos) == 1
    assert unknown_words(tok, "a huge red circle") == ["huge"]
    assert tok.convert_ids_to_tokens(tok("RED")["input_ids"]) == ["[BOS]", "red", "[EOS]"]
    long = tok(" ".join(["red"] * 100), truncation=True)["input_ids"]
    assert len(long) == tok.model_max_length and long[-1] == eos  # EOS survives truncation
    with pytest.raises(ValueError, match="single words"):
        build_caption_tokenizer(["two words"])


def test_text_pooling_reads_the_eos_position(tok, tiny):
    """The text embedding must come from the EOS token, so padding after it changes nothing."""
    short = tok(["a red circle"], return_tensors="pt")
    padded = tok(["a red circle"], padding="max_length", max_length=12, return_tensors="pt")
    with torch.no_grad():
        a = tiny.get_text_features(**short).pooler_output
        b = tiny.get_text_features(**padded).pooler_output
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_model_config_and_errors(tok):
    cfg = small_clip_config(len(tok), image_size=32, patch_size=8, width=32, layers=1, heads=2)
    assert cfg.text_config.eos_token_id == 3 and cfg.vision_config.patch_size == 8
    assert cfg.logit_scale_init_value == pytest.approx(math.log(1 / 0.07))
    with pytest.raises(ValueError, match="legacy pooling"):
        small_clip_config(50, eos_token_id=2)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        small_clip_config(50, image_size=30, patch_size=8)

    class NoEos:
        eos_token_id = None

    with pytest.raises(ValueError, match="eos_token_id"):
        build_clip(NoEos())
    a, b = build_clip(tok, width=32, layers=1, seed=5), build_clip(tok, width=32, layers=1, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_pixel_values_and_collate(tok):
    digits = torch.rand(2, 1, 8, 8)
    px = to_pixel_values(digits, 32)
    assert px.shape == (2, 3, 32, 32) and px.min() >= -1 and px.max() <= 1
    same = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(to_pixel_values(same, 32), (same - 0.5) / 0.5)
    with pytest.raises(ValueError, match=r"\(B, 1 or 3, H, W\)"):
        to_pixel_values(torch.rand(8, 8), 32)
    batch = clip_collate(tok, 32)([{"image": torch.rand(1, 8, 8), "caption": "the number one"}] * 3)
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and batch["input_ids"].shape[0] == 3
    with pytest.raises(ValueError, match="'image' and 'caption'"):
        clip_collate(tok, 32)([{"image": torch.rand(1, 8, 8)}])


def test_pair_logits_gives_in_batch_top1():
    logits = torch.tensor([[5.0, 1.0, 0.0], [4.0, 2.0, 1.0], [0.0, 0.0, 3.0]])
    out = pair_logits(logits)
    assert out["logits"].argmax(1).tolist() == [0, 1, 0]  # row 1's own caption loses to caption 0
    assert pair_logits(torch.tensor([[1.0]]))["logits"].argmax(1).tolist() == [0]


def test_trainer_with_contrastive_step_lowers_the_loss(tok):
    torch.manual_seed(0)
    model = build_clip(tok, width=32, layers=1, heads=2, patch_size=8, projection_dim=32, seed=0)
    train = ShapesDataset(256, seed=0)
    val = ShapesDataset(70, seed=1)  # 70 = 64 + a ragged last batch of 6
    trainer = Trainer(model, lr=3e-3, step_fn=contrastive_step, collate_fn=clip_collate(tok, 32), batch_size=64,
                      progress=False, log=False)
    before = trainer.evaluate(val)
    history = trainer.fit(train, val, epochs=5)
    losses = history["train_loss"]
    assert losses[-1] < losses[0] - 0.3, losses
    assert history["val_loss"][-1] < before["val_loss"]
    assert 0.0 <= history["val_accuracy"][-1] <= 1.0


def test_contrastive_step_rejects_wrong_inputs(tok, tiny):
    from types import SimpleNamespace

    with pytest.raises(TypeError, match="CLIPModel"):
        contrastive_step(SimpleNamespace(model=torch.nn.Linear(2, 2)), {})
    with pytest.raises(ValueError, match="clip_collate"):
        contrastive_step(SimpleNamespace(model=tiny), {"pixel_values": torch.zeros(1)})


def test_encoders_are_normalised_and_batched(tok, tiny):
    texts = [f"a small {c} at the top" for c in SHAPE_CLASSNAMES]
    full = encode_texts(tiny, tok, texts)
    torch.testing.assert_close(full.norm(dim=-1), torch.ones(len(texts)))
    torch.testing.assert_close(encode_texts(tiny, tok, texts, batch_size=3), full, atol=1e-5, rtol=1e-5)
    px = to_pixel_values(torch.rand(5, 3, 32, 32), 32)
    torch.testing.assert_close(encode_images(tiny, px, batch_size=2), encode_images(tiny, px), atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="list of strings"):
        encode_texts(tiny, tok, "a red circle")
    with pytest.raises(ValueError, match="to_pixel_values"):
        encode_images(tiny, torch.rand(2, 3, 16, 16))
    img, txt, caps = embed_pairs(tiny, tok, ShapesDataset(4))
    assert img.shape == txt.shape == (4, 16) and len(caps) == 4
    assert tiny.training  # encoders restore the mode they found


# --------------------------------------------------------------------------- data helpers


def test_digit_captions_and_shape_labels():
    ds = DigitCaptions("val", limit=50)
    words = {c.split()[-1] for c in ds.captions}
    assert words <= set(NUMBER_WORDS)
    for it in (ds[i] for i in range(50)):
        assert it["caption"].endswith(NUMBER_WORDS[it["label"]])
    assert len({t for t in ds.template_ids}) > 1  # several phrasings are used
    with pytest.raises(ValueError, match="slot"):
        DigitCaptions("val", templates=("no slot",))
    shapes = ShapesDataset(20, seed=4)
    labels = shape_labels(shapes)
    for i in range(20):
        assert SHAPE_CLASSNAMES[int(labels[i])] == f"{shapes[i]['color_name']} {shapes[i]['shape_name']}"
    assert shape_class_index("purple", "cross") == 19
    with pytest.raises(ValueError, match="unknown colour/shape"):
        shape_class_index(7, 0)
    assert all(t.count("{}") == 1 for t in SHAPE_TEMPLATES + DIGIT_TEMPLATES)


# --------------------------------------------------------------------------- zero-shot


def test_zero_shot_weights_is_a_normalised_mean_of_normalised_prompts():
    g = torch.Generator().manual_seed(0)
    table = {}

    def enc(texts):
        return torch.stack([table.setdefault(t, torch.randn(6, generator=g) * (1 + len(t))) for t in texts])

    classes, templates = ["cat", "dog"], ["a {}", "a photo of a {}", "the {}"]
    w = zero_shot_weights(enc, classes, templates)
    for c, row in zip(classes, w):
        manual = torch.stack([F.normalize(enc([t.format(c)])[0], dim=0) for t in templates]).mean(0)
        torch.testing.assert_close(row, F.normalize(manual, dim=0))
    single = zero_shot_weights(enc, classes, ["a {}"])
    torch.testing.assert_close(single[0], F.normalize(enc(["a cat"])[0], dim=0))
    with pytest.raises(ValueError, match="slot"):
        zero_shot_weights(enc, classes, ["a photo"])
    with pytest.raises(ValueError, match="classnames is empty"):
        zero_shot_weights(enc, [], ["a {}"])
    with pytest.raises(ValueError, match="expected \\(6, D\\)"):
        zero_shot_weights(lambda t: torch.zeros(1, 3), classes, templates)


def test_zero_shot_prediction_and_shapes_report():
    weights = torch.eye(3)
    images = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.2, 0.7], [0.5, 0.6, 0.0]])
    assert zero_shot_predict(images, weights).tolist() == [0, 2, 1]
    assert zero_shot_accuracy(images, torch.tensor([0, 2, 0]), weights) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one label per image"):
        zero_shot_accuracy(images, torch.tensor([0]), weights)
    # an encoder that knows colour and shape exactly → perfect zero-shot on any classes
    def enc(texts):
        out = []
        for t in texts:
            name = next(c for c in SHAPE_CLASSNAMES if c in t)
            out.append(F.one_hot(torch.tensor(SHAPE_CLASSNAMES.index(name)), 20).float())
        return torch.stack(out)

    labels = torch.tensor([0, 5, 10, 19])
    report = shapes_zero_shot(F.one_hot(labels, 20).float(), labels, enc, SHAPE_TEMPLATES, held_out_classnames() + ["purple cross", "red square"])
    assert report["accuracy"] == 1.0 and report["predictions"].tolist() == labels.tolist()
    with pytest.raises(ValueError, match="unknown class names"):
        shapes_zero_shot(torch.zeros(1, 20), labels[:1], enc, ["a {}"], ["pink circle"])


# --------------------------------------------------------------------------- retrieval


def test_recall_at_k_by_hand_and_with_duplicate_captions():
    sim = torch.tensor([[0.9, 0.8, 0.1], [0.7, 0.6, 0.5], [0.1, 0.2, 0.3]])
    assert recall_at_k(sim, 1) == pytest.approx(2 / 3)  # row 1 ranks item 0 first
    assert recall_at_k(sim, 2) == 1.0
    captions = ["a", "a", "b"]
    pos = caption_positives(captions, captions)
    assert recall_at_k(sim, 1, pos) == 1.0  # item 0 has the same caption as item 1
    with pytest.raises(ValueError, match="k must be between 1"):
        recall_at_k(sim, 4)
    with pytest.raises(ValueError, match="must be square"):
        recall_at_k(torch.zeros(2, 3), 1)
    with pytest.raises(ValueError, match="no correct item"):
        recall_at_k(sim, 1, torch.zeros(3, 3, dtype=torch.bool))


def test_chance_recall_matches_random_rankings():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 8, (40,), generator=g)
    pos = labels[:, None] == labels[None, :]
    expected = chance_recall_at_k(pos, 5)
    sims = [recall_at_k(torch.rand(40, 40, generator=g), 5, pos) for _ in range(300)]
    assert abs(sum(sims) / len(sims) - expected) < 0.02


def test_retrieval_report_both_directions():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(10, 8, generator=g)
    txt = img + 0.01 * torch.randn(10, 8, generator=g)
    rep = retrieval_report(img, txt, ks=(1, 5))
    assert rep["image_to_text_R@1"] == rep["text_to_image_R@1"] == 1.0
    assert rep["chance_R@1"] == pytest.approx(0.1)
    shuffled = retrieval_report(img, txt[torch.randperm(10, generator=g)], captions=[str(i) for i in range(10)])
    assert shuffled["image_to_text_R@1"] < 1.0
    with pytest.raises(ValueError, match="same shape"):
        retrieval_report(img, txt[:5])


# --------------------------------------------------------------------------- loading (offline)


def test_load_clip_hub_id_fails_fast_offline_naming_the_fallback(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(HubUnavailable) as info:
        load_clip("openai/clip-vit-base-patch32")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "openai/clip-vit-base-patch32" in message and "offline" in message
    assert OFFLINE_FALLBACK in message


def test_save_and_load_clip_round_trip(tmp_path, tok, tiny):
    save_clip(tiny, tok, tmp_path / "clip")
    model, processor = load_clip(str(tmp_path / "clip"), device="cpu")
    assert not model.training
    shapes = ShapesDataset(3, seed=9)
    px = to_pixel_values(shapes.images, 32)
    torch.testing.assert_close(encode_images(model, px), encode_images(tiny, px), atol=1e-5, rtol=1e-5)
    texts = ["a small red circle at the top", "the number nine"]
    torch.testing.assert_close(encode_texts(model, processor.tokenizer, texts), encode_texts(tiny, tok, texts),
                               atol=1e-5, rtol=1e-5)
    # the saved processor turns uint8 H×W×3 images into the same pixel values as to_pixel_values
    uint8 = (shapes.images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    via_processor = processor(images=list(uint8), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(via_processor, to_pixel_values(torch.from_numpy(uint8).permute(0, 3, 1, 2) / 255, 32),
                               atol=1e-4, rtol=1e-4)
    probs = photo_zero_shot(model, processor, list(uint8), ["red circle", "blue cross", "green square"], ["a {}"])
    assert probs.shape == (3, 3)
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    # the lesson's pretrained-CLIP cell on real photos of any size, through the same processor path
    photos = sample_photos(["camera", "coffee", "chelsea"])
    labels = ["a man with a camera", "a cup of coffee", "a cat"]
    probs = photo_zero_shot(model, processor, [p for _, p in photos], labels, ["a photo of {}.", "an image of {}."])
    assert probs.shape == (3, 3) and torch.isfinite(probs).all()
    fig = plot_photo_zero_shot(photos, probs, labels, true_labels=labels)
    assert fig._suptitle.get_text() == "Zero-shot predictions"
    with pytest.raises(ValueError, match="must be \\(photos, labels\\)"):
        plot_photo_zero_shot(photos, probs[:2], labels)


def test_load_clip_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_clip(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="neither an existing folder nor a hub id"):
        load_clip("./no/such/folder")
    with pytest.raises(TypeError, match="hub id"):
        load_clip(3)


def test_sample_photos_are_rgb_uint8():
    photos = sample_photos(["camera", "chelsea"])
    assert [n for n, _ in photos] == ["camera", "chelsea"]
    for _, img in photos:
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype.name == "uint8"
    with pytest.raises(ValueError, match="unknown sample photo"):
        sample_photos(["lena"])


# --------------------------------------------------------------------------- plots and widget


def test_plots_have_titles_and_labels():
    fig = plot_similarity_matrix(torch.rand(3, 4), list("abc"), list("wxyz"), title="sim")
    ax = fig.axes[0]
    assert ax.get_title() == "sim" and ax.get_xlabel() and ax.get_ylabel()
    fig = plot_joint_embedding(torch.randn(12, 5), torch.randn(3, 5), ["x"] * 6 + ["y"] * 6, ["x", "y", "z"],
                               images=torch.rand(12, 3, 8, 8), n_thumbnails=3)
    ax = fig.axes[0]
    assert "PCA" in ax.get_title() and ax.get_xlabel() == "PCA 1"
    fig = plot_joint_embedding(torch.randn(12, 5), torch.randn(3, 5), ["x"] * 12, ["x", "y", "z"], method="tsne",
                               remove_gap=True)
    assert "t-SNE" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="'pca' or 'tsne'"):
        plot_joint_embedding(torch.randn(4, 5), torch.randn(1, 5), ["x"] * 4, ["x"], method="umap")
    fig = plot_accuracy_bars({"seen": {"one": 0.5, "ensemble": 0.7}}, chance=0.05)
    assert fig.axes[0].get_ylabel() == "accuracy"


def test_retrieval_widget_updates_when_the_learner_types_or_picks(tok, tiny):
    ds = ShapesDataset(16, seed=2)
    box = retrieval_explorer(tiny, tok, ds.images, ds.captions, k=4, true_captions=ds.captions)
    assert "tutorlib-widget" in box._dom_classes
    ex = box.explorer
    assert ex.last_search["query"] == "a large blue square on the left" and len(ex.last_search["indices"]) == 4
    ex.query.value = "a small red circle at the top"  # typing (Enter) triggers the search
    assert ex.last_search["query"] == "a small red circle at the top"
    expected = top_images_for_text("a small red circle at the top", tiny, tok, ex.image_emb, 4)
    assert ex.last_search["indices"].tolist() == expected["indices"].tolist()
    ex.query.value = "a huge red circle"
    assert ex.last_search["unknown"] == ["huge"]
    ex.image_index.value = 5
    assert ex.last_image["index"] == 5
    assert ex.last_image["texts"] == top_texts_for_image(5, ex.image_emb, ex.text_emb, ex.texts, 4)["texts"]
    ex.k.value = 2
    assert len(ex.last_image["texts"]) == 2 and len(ex.last_search["indices"]) == 2
    assert ex.search("   ") is None
    with pytest.raises(IndexError, match="out of range"):
        top_texts_for_image(99, ex.image_emb, ex.text_emb, ex.texts)
