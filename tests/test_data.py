"""tutorlib.data: bundled datasets, fixed splits, hub fast-fail offline."""

import time

import pytest
import torch

from tutorlib import data


def test_digits_splits_are_disjoint_and_complete():
    sizes = {s: len(data.load_digits(s)) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == len(data.load_digits("all")) == 1797
    x, y = data.load_digits("train").tensors
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    tr = {tuple(r.tolist()) for r in data.load_digits("train", flat=True).tensors[0]}
    te = {tuple(r.tolist()) for r in data.load_digits("test", flat=True).tensors[0]}
    # A few sklearn digits are exact duplicates of each other; the splits must not share indices though.
    assert len(tr & te) < 5


def test_digits_bad_split_and_limit():
    with pytest.raises(ValueError, match="unknown split"):
        data.load_digits("training")
    with pytest.raises(ValueError, match="limit"):
        data.load_digits("train", limit=0)
    assert len(data.load_digits("train", limit=50)) == 50


def test_reviews_bundled_balanced_and_split():
    ds = data.load_reviews("all")
    assert len(ds) >= 1500
    assert abs(sum(ds.labels) - len(ds) / 2) <= 1  # balanced
    assert len(set(ds.domains)) >= 6
    assert len(set(ds.texts)) == len(ds.texts)  # no duplicates
    sizes = [len(data.load_reviews(s)) for s in ("train", "val", "test")]
    assert sum(sizes) == len(ds) and sizes[0] > sizes[1]
    text, label = data.load_reviews("val")[0]
    assert isinstance(text, str) and label in (0, 1)
    # Negations are part of the set (the hard cases the design asks for).
    assert sum(any(w in t.lower().split() for w in ("not", "never", "wasn't", "isn't", "didn't", "don't")) for t in ds.texts) > 0.1 * len(ds)


def test_reviews_bad_csv(tmp_path):
    bad = tmp_path / "r.csv"
    bad.write_text("text,label\nhello,positive\n")
    with pytest.raises(ValueError, match="lacks column"):
        data.load_reviews("all", path=bad)
    with pytest.raises(FileNotFoundError, match="review data not found"):
        data.load_reviews("all", path=tmp_path / "missing.csv")
    bad.write_text("text,label,domain,split\nhello,great,book,train\n")
    with pytest.raises(ValueError, match="row 2"):
        data.load_reviews("all", path=bad)


def test_shapes_captions_match_attributes_and_holdout():
    ds = data.ShapesDataset(40, seed=1, exclude=[("red", "circle")])
    for item in ds:
        assert item["image"].shape == (3, 32, 32)
        assert item["caption"] == data.caption_for(item["color_name"], item["shape_name"],
                                                   data.SIZES[item["size"]], data.POSITIONS[item["position"]])
        assert not (item["color_name"] == "red" and item["shape_name"] == "circle")
    only = data.ShapesDataset(10, only=[("red", "circle")])
    assert {(i["color_name"], i["shape_name"]) for i in only} == {("red", "circle")}
    # The drawn colour is really the named one: the shape's pixels are closest to its colour.
    item = only[0]
    img = item["image"]
    fg = (img - 0.92).abs().sum(0) > 0.3
    mean_rgb = img[:, fg].mean(1)
    assert mean_rgb[0] > mean_rgb[1] and mean_rgb[0] > mean_rgb[2]
    with pytest.raises(ValueError, match="unknown"):
        data.ShapesDataset(4, exclude=[("pink", "circle")])


def test_code_corpus_is_python_source():
    text = data.code_corpus(20_000)
    assert len(text) == 20_000 and "def " in text and "import" in text
    assert all(ord(c) < 128 for c in text)


def test_hub_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(data.HubUnavailable, match="bundled"):
        data.load_hub_dataset("stanfordnlp/imdb")
    assert time.perf_counter() - t0 < 5


def test_make_loader_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        data.make_loader(torch.utils.data.TensorDataset(torch.zeros(0, 2)))
