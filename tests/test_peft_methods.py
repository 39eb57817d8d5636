"""Every fine-tuning method built on a tiny encoder: shapes, trainable counts, artefacts, memory measurement,
the comparison table and the explorer widget."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from tutorlib.peft import (METHODS, MethodConfig, MethodResult, build_model, compare_methods,
                           load_trained, measure_training_memory, plot_comparison, results_table, save_trained)
from tutorlib.measure import LiveTensorMemory
from tutorlib.models import trainable_summary

H, LAYERS, FF = 32, 2, 64


def tiny_encoder(vocab: int = 30522):
    """A 2-layer BERT with MiniLM's vocabulary, so the bundled tokenizer works with it."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=vocab, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=4,
                                intermediate_size=FF)).eval()


@pytest.fixture(scope="module")
def encoder():
    return tiny_encoder()


HEAD = H * 3 + 3  # a 3-class head
EXPECTED_TRAINABLE = {
    "head": HEAD,
    "lora-ours": LAYERS * 2 * 4 * (H + H) + HEAD,
    "lora": LAYERS * 2 * 4 * (H + H) + HEAD,
    "dora": LAYERS * 2 * (4 * (H + H) + H) + HEAD,  # + a magnitude per output feature
    "ia3": LAYERS * (H + H + FF) + HEAD,            # keys, values, feed-forward activations
    "prefix": 10 * LAYERS * 2 * H + HEAD,            # keys and values of 10 virtual tokens per layer
    "prompt": 10 * H + HEAD,                         # 10 virtual input embeddings
    "houlsby": LAYERS * 2 * (2 * H * 4 + 4 + H) + (1 + 2 * LAYERS) * 2 * H + HEAD,
    "pfeiffer": LAYERS * (2 * H * 4 + 4 + H) + HEAD,
}


@pytest.mark.parametrize("method", [m for m in METHODS if m != "full"])
def test_each_method_trains_only_its_parameters(method, encoder, tmp_path):
    model = build_model(method, num_labels=3, encoder=encoder, r=4, bottleneck=4)
    summary = trainable_summary(model)
    assert summary["trainable"] == EXPECTED_TRAINABLE[method]
    ids = torch.randint(0, 30522, (4, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    model.train()
    logits = model(input_ids=ids, attention_mask=mask)
    assert logits.shape == (4, 3)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{method}: no gradient reached {name}"
        else:
            assert p.grad is None, f"{method}: frozen {name} got a gradient"
    # the encoder we passed is copied, never modified
    assert not any(isinstance(m, nn.ModuleDict) and "default" in m for m in encoder.modules())
    # artefact round trip on a fresh base: identical outputs, small files
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask)
    save_trained(model, tmp_path, extra={"labels": ["a", "b", "c"]})
    weights = [f for f in os.listdir(tmp_path) if f.endswith(".safetensors")]
    assert sum(os.path.getsize(tmp_path / f) for f in weights) < 8 * summary["trainable"] + 10_000
    again = load_trained(tmp_path, encoder=encoder)
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids, attention_mask=mask), expected)


def test_full_fine_tuning_trains_everything(encoder, tmp_path):
    model = build_model("full", num_labels=2, encoder=encoder)
    s = trainable_summary(model)
    assert s["trainable"] == s["total"] and s["percent"] == 100.0
    save_trained(model, tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    ids = torch.randint(0, 30522, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(load_trained(tmp_path, encoder=encoder)(input_ids=ids), model.eval()(input_ids=ids))


def test_method_config_errors(encoder, tmp_path):
    with pytest.raises(ValueError, match="unknown method 'loraa'"):
        MethodConfig("loraa")
    with pytest.raises(ValueError, match="target_modules is empty"):
        MethodConfig("lora", target_modules=())
    with pytest.raises(ValueError, match="Linear layers are named.*query"):
        build_model("lora", encoder=encoder, target_modules=("qkv",))
    with pytest.raises(ValueError, match="not made by tutorlib.peft.build_model"):
        save_trained(nn.Linear(2, 2), tmp_path)
    with pytest.raises(FileNotFoundError, match="tutorlib_model.json"):
        load_trained(tmp_path)


def test_live_tensor_memory_counts_allocations_and_frees():
    with LiveTensorMemory() as mem:
        a = torch.ones(1024)          # 4 KiB
        b = torch.ones(2048)          # 8 KiB
        del a
        c = b * 2                     # 8 KiB more: peak 16 KiB (a was freed)
        del b
    assert mem.peak_bytes == 16 * 1024
    assert mem.current_bytes == 8 * 1024
    del c


def test_peak_memory_is_lower_for_lora_than_full(encoder):
    from tutorlib.data import text_collate
    from tutorlib.models import load_tokenizer

    collate = text_collate(load_tokenizer(), 32)
    batch = [("a quiet hotel with a lovely view", 1), ("the battery died in an hour", 0)] * 4
    full = measure_training_memory(build_model("full", encoder=encoder), batch, lr=1e-4, collate_fn=collate, device="cpu")
    lora = measure_training_memory(build_model("lora", encoder=encoder), batch, lr=1e-3, collate_fn=collate, device="cpu")
    params = sum(p.numel() for p in encoder.parameters()) * 4
    # full fine-tuning holds weights + gradients + two AdamW moments for every parameter
    assert full > 3.5 * params
    assert lora < 0.6 * full


def test_compare_methods_table_and_plot(encoder):
    from tutorlib.data import load_reviews

    train, val = load_reviews("train", limit=24), load_reviews("val", limit=16)
    seen = []
    res = compare_methods(["head", "lora"], train, val, val, epochs=2, batch_size=8, encoder=encoder,
                          lr={"head": 1e-2, "lora": 1e-2}, progress=False, on_result=seen.append)
    assert [r.method for r in res] == ["head", "lora"] == [r.method for r in seen]
    for r in res:
        assert 0 < r.percent < 100 and r.peak_bytes > 0 and r.seconds_per_epoch > 0
        assert 0 <= r.val_accuracy <= 1 and r.test_accuracy is not None
        losses = [e["train_loss"] for e in r.history]
        assert len(losses) == 2 and losses[1] < losses[0]
    table = results_table(res)
    assert table.count("\n") == 3 and "LoRA (peft)" in table and "head only" in table
    fig = plot_comparison(res)
    assert len(fig.axes) == 3 and fig.axes[0].get_xlabel().startswith("trainable")
    with pytest.raises(ValueError, match="methods is empty"):
        compare_methods([], train, val)


def test_method_result_row():
    r = MethodResult("lora", "LoRA", 10, 1000, 1.0, 3 * 2**20, 2.5, 0.875, 0.9)
    row = r.row()
    assert row["peak train MiB"] == "3" and row["val acc"] == "87.5" and row["test acc"] == "90.0"


def test_explorer_widget_updates(encoder):
    import matplotlib

    matplotlib.use("Agg")
    from tutorlib.data import load_reviews
    from tutorlib.peft.widgets import PeftExplorer

    ex = PeftExplorer(load_reviews("train", limit=8), load_reviews("val", limit=8), encoder=encoder, batch_size=4)
    assert "tutorlib-widget" in ex.widget._dom_classes
    first = dict(ex.last_summary)
    assert first["method"] == "lora" and first["trainable"] == LAYERS * 2 * 8 * (2 * H) + 2 * H + 2
    ex.size.value = 2
    assert ex.last_summary["trainable"] < first["trainable"]
    ex.targets.value = ("query", "key", "value", "dense")
    assert ex.last_summary["trainable"] > first["trainable"] * 0.2
    ex.method.value = "ia3"
    assert ex.targets.disabled and ex.last_summary["method"] == "ia3"
    ex.method.value = "full"
    assert ex.last_summary["percent"] == 100.0 and ex.size.disabled
    ex.method.value = "lora"
    result = ex.run()
    assert result["method"] == "lora" and 0 <= result["val_accuracy"] <= 1 and result["losses"]
    assert not ex.button.disabled
