"""The references of lessons 11 and 12's exercises: the completion-only loss equals the causal LM's own loss
with -100 labels, and the best span is the brute-force best valid (start, end) pair."""

from __future__ import annotations

import itertools

import pytest
import torch

from tutorlib.llm import to_gpt2
from tutorlib.llm.sft import IGNORE_INDEX, completion_loss, mask_prompt_labels
from tutorlib.llm.tasks import best_span
from tutorlib.models import GPTConfig, TinyGPT


def test_completion_loss_equals_the_transformers_loss():
    torch.manual_seed(0)
    gpt2 = to_gpt2(TinyGPT(GPTConfig(block_size=32, n_layer=1, n_head=2, d_model=16))).eval()
    rows = [mask_prompt_labels([5, 6, 7, 8], [9, 10], eos_id=3), mask_prompt_labels([11, 12], [13, 14, 15, 16], eos_id=3)]
    ids = torch.tensor([r[0] for r in rows])
    labels = torch.tensor([r[1] for r in rows])
    out = gpt2(input_ids=ids, labels=labels)
    assert torch.allclose(completion_loss(out.logits, labels), out.loss, atol=1e-6)
    # the prompt really is left out: changing its labels to the ids changes the loss
    assert not torch.allclose(completion_loss(out.logits, ids), out.loss)
    with pytest.raises(ValueError, match="nothing to learn"):
        completion_loss(out.logits, torch.full_like(labels, IGNORE_INDEX))
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        completion_loss(out.logits[0], labels)


def test_best_span_is_the_best_valid_pair():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(1, 9, (1,), generator=g))
        start, end = torch.randn(n, generator=g), torch.randn(n, generator=g)
        allowed = torch.rand(n, generator=g) > 0.3
        allowed[int(torch.randint(n, (1,), generator=g))] = True
        k = int(torch.randint(1, 5, (1,), generator=g))
        pairs = [(s, e) for s, e in itertools.product(range(n), repeat=2) if s <= e < s + k and allowed[s] and allowed[e]]
        want = max(pairs, key=lambda p: float(start[p[0]] + end[p[1]]))
        assert best_span(start, end, k, allowed) == want
    with pytest.raises(ValueError, match="same length"):
        best_span(torch.zeros(3), torch.zeros(4), 2)
    with pytest.raises(ValueError, match="no position"):
        best_span(torch.zeros(3), torch.zeros(3), 2, torch.zeros(3, dtype=torch.bool))
