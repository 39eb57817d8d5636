"""Pruning: our masks vs torch.nn.utils.prune, masks that survive training, structured removal that really shrinks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from tutorlib.compress import (apply_masks, compare_latency, count_weights, global_magnitude_masks, head_scores,
                               is_pruned, layer_sparsities, magnitude_mask, make_permanent, model_bytes, neuron_scores,
                               prune_attention_heads, prune_ffn_neurons, prune_magnitude, remove_attention_heads,
                               remove_conv_channels, remove_neurons, select_layers, shrink_linear_pair,
                               shrink_small_cnn, sparse_size_bytes, torch_prune, weight_sparsity)
from tutorlib.data import load_digits
from tutorlib.models import MLP, SmallCNN
from tutorlib.train import Trainer


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 3))


def _tiny_bert(hidden: int = 32, layers: int = 2, heads: int = 4, inter: int = 64):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter, max_position_embeddings=32, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertModel(cfg, add_pooling_layer=False).eval()


# --------------------------------------------------------------------------- from scratch == torch.nn.utils.prune


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_layer_mask_matches_torch_l1_unstructured(sparsity):
    layer = nn.Linear(7, 5)
    ref = copy.deepcopy(layer)
    tprune.l1_unstructured(ref, "weight", amount=sparsity)
    assert torch.equal(magnitude_mask(layer.weight, sparsity), ref.weight_mask)


def test_global_masks_match_torch_global_unstructured():
    model, ref = _mlp(), None
    ref = copy.deepcopy(model)
    layers = [m for m in ref if isinstance(m, nn.Linear)]
    tprune.global_unstructured([(m, "weight") for m in layers], pruning_method=tprune.L1Unstructured, amount=0.6)
    ours = global_magnitude_masks([m.weight for m in model if isinstance(m, nn.Linear)], 0.6)
    for mine, theirs in zip(ours, layers):
        assert torch.equal(mine, theirs.weight_mask)
    # the wrapper that uses torch.nn.utils.prune returns the same masks as prune_magnitude
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    masks_torch = torch_prune(a, 0.6, scope="global")
    masks_ours = prune_magnitude(b, 0.6, scope="global")
    assert masks_torch.keys() == masks_ours.keys()
    assert all(torch.equal(masks_torch[k], masks_ours[k]) for k in masks_ours)
    x = torch.randn(5, 12)
    assert torch.allclose(a(x), b(x))


def test_global_pruning_differs_from_layerwise_and_hits_the_target():
    model = _mlp()
    with torch.no_grad():
        model[0].weight.mul_(0.1)  # a layer of small weights: global pruning should take more from it
    g, lw = copy.deepcopy(model), copy.deepcopy(model)
    prune_magnitude(g, 0.5, scope="global")
    prune_magnitude(lw, 0.5, scope="layer")
    assert weight_sparsity(g) == pytest.approx(0.5, abs=1e-3)
    assert all(s == pytest.approx(0.5, abs=0.02) for s in layer_sparsities(lw).values())
    assert layer_sparsities(g)["0"] > 0.9


# --------------------------------------------------------------------------- masks survive training


def test_pruned_weights_stay_exactly_zero_through_fine_tuning():
    model = MLP(64, [64], 10)
    masks = prune_magnitude(model, 0.5)
    before = {k: v.clone() for k, v in masks.items()}
    data = load_digits("train", limit=256)
    history = Trainer(model, lr=1e-2, weight_decay=0.01, batch_size=32, progress=False, log=False).fit(data, epochs=2)
    assert len(history.steps) == 16
    for name, module in select_layers(model).items():
        w = module.weight.detach()
        assert torch.all(w[before[name] == 0] == 0), f"pruned weights of {name} came back"
        assert torch.count_nonzero(w[before[name] == 1]) > 0
    assert weight_sparsity(model) >= 0.5


def test_naive_zeroing_does_not_survive_an_update():
    """The seed tutorial's version: zero the weights once, then train — they grow back."""
    model = MLP(64, [32], 10)
    with torch.no_grad():
        for m in select_layers(model).values():
            m.weight.mul_(magnitude_mask(m.weight, 0.5))
    assert weight_sparsity(model) == pytest.approx(0.5, abs=0.01)
    Trainer(model, lr=1e-2, batch_size=64, progress=False, log=False).fit(load_digits("train", limit=128), epochs=1)
    # most zeros are gone after 2 steps (the rest sit on always-blank pixels, whose gradient is 0)
    assert weight_sparsity(model) < 0.2


def test_make_permanent_keeps_zeros_and_outputs_and_restores_plain_state_dict():
    model = _mlp()
    plain_keys = set(model.state_dict())
    prune_magnitude(model, 0.7)
    assert is_pruned(model)
    assert any("parametrizations" in k for k in model.state_dict())
    x = torch.randn(4, 12)
    y = model(x)
    make_permanent(model)
    assert not is_pruned(model)
    assert set(model.state_dict()) == plain_keys
    assert torch.allclose(model(x), y)
    assert weight_sparsity(model) == pytest.approx(0.7, abs=1e-3)


def test_iterative_pruning_only_grows_the_mask():
    model = _mlp()
    first = prune_magnitude(model, 0.3)
    second = prune_magnitude(model, 0.6)
    for k in first:
        assert torch.all(second[k][first[k] == 0] == 0)
    assert weight_sparsity(model) == pytest.approx(0.6, abs=1e-3)


def test_masks_count_in_count_weights():
    model = _mlp()
    total, nz = count_weights(model)
    prune_magnitude(model, 0.5)
    total2, nz2 = count_weights(model)
    assert total2 == total
    weights = sum(m.weight.numel() for m in select_layers(model).values())
    assert nz - nz2 == round(0.5 * weights)


def test_dense_zeros_are_not_smaller_but_csr_is_at_high_sparsity():
    model = nn.Sequential(nn.Linear(128, 128), nn.Linear(128, 128))
    dense = sparse_size_bytes(model)
    assert dense["csr"] > dense["dense"]
    prune_magnitude(model, 0.9)
    with pytest.raises(ValueError, match="make_permanent"):
        sparse_size_bytes(model)
    make_permanent(model)
    s = sparse_size_bytes(model)
    assert s["dense"] == dense["dense"] or abs(s["dense"] - dense["dense"]) < 200
    assert s["csr"] < 0.4 * s["dense"]


def test_pruning_errors_are_clear():
    with pytest.raises(ValueError, match="sparsity must be in"):
        prune_magnitude(_mlp(), 1.5)
    with pytest.raises(ValueError, match="scope"):
        prune_magnitude(_mlp(), 0.5, scope="everything")
    with pytest.raises(ValueError, match="no layer of type"):
        prune_magnitude(nn.Sequential(nn.ReLU()), 0.5)
    with pytest.raises(KeyError, match="no module named"):
        apply_masks(_mlp(), {"nope": torch.ones(2)})
    with pytest.raises(ValueError, match="shape"):
        apply_masks(_mlp(), {"0": torch.ones(3, 3)})
    with pytest.raises(TypeError, match="floating-point"):
        magnitude_mask(torch.ones(3, dtype=torch.long), 0.5)


# --------------------------------------------------------------------------- structured


def test_neuron_ranking_matches_torch_ln_structured():
    fc1 = nn.Linear(6, 10)
    ref = copy.deepcopy(fc1)
    tprune.ln_structured(ref, "weight", amount=0.4, n=1, dim=0)
    kept_torch = set(torch.nonzero(ref.weight_mask.sum(1)).flatten().tolist())
    kept_ours = set(torch.topk(neuron_scores(fc1), 6).indices.tolist())
    assert kept_ours == kept_torch


def test_remove_neurons_equals_masking_them_and_really_shrinks():
    fc1, fc2 = nn.Linear(8, 20), nn.Linear(20, 3)
    keep = torch.tensor([0, 3, 4, 9, 15, 19])
    small1, small2 = remove_neurons(fc1, fc2, keep)
    masked = copy.deepcopy(fc1)
    drop = torch.ones(20, dtype=torch.bool)
    drop[keep] = False
    with torch.no_grad():
        masked.weight[drop] = 0
        masked.bias[drop] = 0
    x = torch.randn(5, 8)
    assert torch.allclose(small2(torch.relu(small1(x))), fc2(torch.relu(masked(x))), atol=1e-6)
    assert small1.weight.shape == (6, 8) and small2.weight.shape == (3, 6)
    a, b = shrink_linear_pair(fc1, fc2, 0.25)
    assert a.out_features == b.in_features == 5
    with pytest.raises(ValueError, match="outside"):
        remove_neurons(fc1, fc2, [0, 25])
    with pytest.raises(ValueError, match="not a pair"):
        remove_neurons(fc1, nn.Linear(7, 2), [0])


def test_structured_pruning_is_smaller_and_faster():
    torch.manual_seed(0)
    big = nn.Sequential(nn.Linear(256, 2048), nn.ReLU(), nn.Linear(2048, 256)).eval()
    fc1, fc2 = shrink_linear_pair(big[0], big[2], 0.25)
    small = nn.Sequential(fc1, nn.ReLU(), fc2).eval()
    assert count_weights(small)[0] < 0.3 * count_weights(big)[0]
    assert model_bytes(small) < 0.3 * model_bytes(big)
    times = compare_latency({"big": big, "small": small}, torch.randn(256, 256), repeats=15, warmup=3)
    assert times["small"] < times["big"], times


def test_ffn_neuron_pruning_on_bert():
    bert = _tiny_bert()
    ids = torch.randint(0, 50, (3, 9))
    full = prune_ffn_neurons(copy.deepcopy(bert), 1.0)
    assert torch.allclose(full(ids).last_hidden_state, bert(ids).last_hidden_state, atol=1e-5)
    small = prune_ffn_neurons(copy.deepcopy(bert), 0.5)
    assert small.encoder.layer[0].intermediate.dense.out_features == 32
    assert small.encoder.layer[1].output.dense.in_features == 32
    assert count_weights(small)[0] < count_weights(bert)[0]
    assert model_bytes(small) < model_bytes(bert)
    assert small(ids).last_hidden_state.shape == (3, 9, 32)


def test_removing_heads_equals_silencing_them():
    bert = _tiny_bert()
    ids = torch.randint(0, 50, (2, 7))
    plan = {0: [1, 2], 1: [0]}
    silenced = copy.deepcopy(bert)
    d = 32 // 4
    with torch.no_grad():
        for li, heads in plan.items():
            v = silenced.encoder.layer[li].attention.self.value
            for h in heads:  # a head whose values are zero writes nothing
                v.weight[h * d:(h + 1) * d] = 0
                v.bias[h * d:(h + 1) * d] = 0
    pruned = remove_attention_heads(copy.deepcopy(bert), plan)
    assert pruned.encoder.layer[0].attention.self.num_attention_heads == 2
    assert pruned.encoder.layer[0].attention.self.query.out_features == 16
    assert pruned.encoder.layer[0].attention.output.dense.in_features == 16
    assert torch.allclose(pruned(ids).last_hidden_state, silenced(ids).last_hidden_state, atol=1e-5)
    assert count_weights(pruned)[0] < count_weights(bert)[0]
    with pytest.raises(ValueError, match="keep at least one"):
        remove_attention_heads(copy.deepcopy(bert), {0: [0, 1, 2, 3]})
    with pytest.raises(ValueError, match="out of range"):
        remove_attention_heads(copy.deepcopy(bert), {5: [0]})


def test_prune_heads_by_score_keeps_the_strongest():
    bert = _tiny_bert()
    scores = head_scores(bert)
    assert scores.shape == (2, 4)
    best = scores.argmax(1)
    pruned = prune_attention_heads(copy.deepcopy(bert), 0.25)
    for li, layer in enumerate(pruned.encoder.layer):
        assert layer.attention.self.num_attention_heads == 1
        h = int(best[li])
        d = 8
        assert torch.equal(layer.attention.self.value.weight, bert.encoder.layer[li].attention.self.value.weight[h * d:(h + 1) * d])


def test_conv_channel_removal_equals_silencing_channels():
    torch.manual_seed(0)
    cnn = SmallCNN(width=8).eval()
    with torch.no_grad():  # non-trivial BN statistics
        for bn in (cnn.features[1], cnn.features[4]):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    x = torch.rand(4, 1, 8, 8)
    keep1 = torch.tensor([0, 2, 5, 7])
    silenced = copy.deepcopy(cnn)
    drop = torch.ones(8, dtype=torch.bool)
    drop[keep1] = False
    with torch.no_grad():  # BN scale and shift 0 → channel output 0 after ReLU
        silenced.features[1].weight[drop] = 0
        silenced.features[1].bias[drop] = 0
    new = copy.deepcopy(cnn)
    new.features[0], new.features[1], new.features[3] = remove_conv_channels(new.features[0], new.features[1],
                                                                             new.features[3], keep1)
    assert torch.allclose(new(x), silenced(x), atol=1e-5)
    small = shrink_small_cnn(cnn, 0.5)
    assert small.features[0].out_channels == 4 and small.features[3].out_channels == 8
    assert small.classifier[-1].in_features == 8 * 4
    assert small(x).shape == (4, 10)
    assert count_weights(small)[0] < 0.4 * count_weights(cnn)[0]
    same = shrink_small_cnn(cnn, 1.0)
    assert torch.allclose(same(x), cnn(x), atol=1e-5)
    with pytest.raises(TypeError, match="SmallCNN layout"):
        shrink_small_cnn(MLP(), 0.5)
