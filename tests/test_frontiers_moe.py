"""Mixture of experts: routing, the Switch balancing loss, the layer, and training inside TinyGPT."""

import pytest
import torch
from torch.utils.data import TensorDataset

from tutorlib.frontiers import (MoELayer, dense_gpt, expert_counts, lm_step_fn, load_balancing_loss, moe_aux_loss,
                                moe_gpt, top_k_routing)
from tutorlib.data import code_corpus
from tutorlib.models import ByteTokenizer, GPTConfig, TinyGPT
from tutorlib.train import Trainer

CFG = GPTConfig(vocab_size=128, block_size=16, n_layer=2, n_head=2, d_model=32)


def test_routing_picks_best_experts_and_renormalises():
    logits = torch.randn(20, 5)
    w, idx, probs = top_k_routing(logits, 2)
    assert torch.equal(idx, logits.topk(2).indices)
    torch.testing.assert_close(w.sum(1), torch.ones(20))
    torch.testing.assert_close(probs, logits.softmax(-1))


def test_balancing_loss_is_one_when_uniform_and_larger_when_collapsed():
    E, N = 4, 64
    uniform = load_balancing_loss(torch.full((N, E), 1 / E), torch.arange(N).remainder(E)[:, None])
    assert uniform.item() == pytest.approx(1.0)
    collapsed = torch.zeros(N, E); collapsed[:, 0] = 1
    assert load_balancing_loss(collapsed, torch.zeros(N, 1, dtype=torch.long)).item() == pytest.approx(E)


def test_balancing_loss_gradient_pushes_probability_away_from_busy_expert():
    logits = torch.zeros(8, 3, requires_grad=True)
    idx = torch.zeros(8, 1, dtype=torch.long)  # everyone went to expert 0
    load_balancing_loss(logits.softmax(-1), idx).backward()
    assert (logits.grad[:, 0] > 0).all() and (logits.grad[:, 1:] < 0).all()


def test_moe_layer_equals_weighted_sum_of_chosen_experts():
    torch.manual_seed(0)
    layer = MoELayer(8, 16, n_experts=3, k=2)
    x = torch.randn(5, 8)
    out = layer(x)
    w, idx, _ = top_k_routing(layer.router(x), 2)  # k=2: renormalised weights
    ref = torch.stack([sum(w[t, s] * layer.experts[int(idx[t, s])](x[t]) for s in range(2)) for t in range(5)])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert int(layer.last_counts.sum()) == 10


def test_moe_gpt_is_a_tinygpt_with_moe_blocks_and_dense_has_equal_compute():
    moe, dense = moe_gpt(CFG, n_experts=4, k=1, d_hidden=64), dense_gpt(CFG, d_hidden=64)
    assert type(moe) is TinyGPT and all(isinstance(b.mlp, MoELayer) for b in moe.blocks)
    assert dense.blocks[0].mlp.fc.out_features == moe.blocks[0].mlp.experts[0].fc.out_features
    n_moe, n_dense = (sum(p.numel() for p in m.parameters()) for m in (moe, dense))
    assert n_moe > n_dense  # more parameters, same per-token FFN compute (k=1 expert of the same size)
    moe(torch.zeros(1, 16, dtype=torch.long))
    assert expert_counts(moe).shape == (2, 4) and moe_aux_loss(moe).item() >= 1.0 - 1e-6


def test_moe_gpt_trains_and_balancing_loss_keeps_experts_busy():
    ids = torch.tensor(ByteTokenizer().encode(code_corpus(20_000)))
    data = ids[: (len(ids) // 17) * 17].view(-1, 17)[:256]
    runs = {}
    for aux in (0.0, 0.1):
        torch.manual_seed(0)
        model = moe_gpt(CFG, n_experts=4, k=1, d_hidden=32)
        log = []
        Trainer(model, lr=1e-2, batch_size=16, step_fn=lm_step_fn(aux, log), metrics=(), progress=False, log=False).fit(
            TensorDataset(data), epochs=3)
        runs[aux] = log
    first, last = runs[0.1][0], runs[0.1][-1]
    assert last["lm"] < first["lm"] - 1.0  # the LM loss falls

    def shares(log):
        tail = torch.stack([e["counts"] for e in log[-5:]]).float().sum(0)
        return tail / tail.sum(1, keepdim=True)

    assert shares(runs[0.1]).min() > 0.05  # no starved expert with the balancing loss
    assert shares(runs[0.0]).max() > shares(runs[0.1]).max() + 0.2  # without it the router collapses
    assert runs[0.1][-1]["aux"] < runs[0.0][-1]["aux"]


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="k must be"):
        top_k_routing(torch.randn(4, 3), 4)
    with pytest.raises(ValueError, match="flatten"):
        top_k_routing(torch.randn(2, 4, 3), 1)
    with pytest.raises(ValueError, match="n_experts"):
        MoELayer(8, 16, n_experts=2, k=3)
    with pytest.raises(ValueError, match="no MoELayer"):
        expert_counts(dense_gpt(CFG, 32))
