"""The lesson 06 exercise checks: right answers pass, typical wrong answers fail with a precise message,
and the learner's random state is left alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tutorlib.grading.registry import run_check


class LoRA(nn.Module):  # the exercise's class with a correct forward
    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.scaling * self.lora_B(self.lora_A(x))


class NoScaling(LoRA):
    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x))


class OnlyUpdate(LoRA):
    def forward(self, x):
        return self.scaling * self.lora_B(self.lora_A(x))


class Stub(LoRA):
    def forward(self, x):
        raise NotImplementedError("ex06_1: write your answer here")


def check(ex, **ns):
    return run_check(ex, ns, device="cpu")


def test_ex06_1_lora_forward():
    assert check("ex06_1", LoRA=LoRA).status == "pass"
    assert "multiplied by self.scaling" in check("ex06_1", LoRA=NoScaling).message
    assert "add the base output" in check("ex06_1", LoRA=OnlyUpdate).message
    assert check("ex06_1", LoRA=Stub).status == "not_attempted"
    assert "not defined" in check("ex06_1").message


def test_ex06_2_merged_linear():
    def right(layer):
        out = nn.Linear(layer.base.in_features, layer.base.out_features, bias=layer.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(layer.base.weight + layer.scaling * layer.lora_B.weight @ layer.lora_A.weight)
            if layer.base.bias is not None:
                out.bias.copy_(layer.base.bias)
        return out

    def unscaled(layer):
        out = right(layer)
        with torch.no_grad():
            out.weight.copy_(layer.base.weight + layer.lora_B.weight @ layer.lora_A.weight)
        return out

    def in_place(layer):
        with torch.no_grad():
            layer.base.weight += layer.scaling * layer.lora_B.weight @ layer.lora_A.weight
        return layer.base

    assert check("ex06_2", merged_linear=right).status == "pass"
    assert "multiply B @ A by layer.scaling" in check("ex06_2", merged_linear=unscaled).message
    assert "changed its input" in check("ex06_2", merged_linear=in_place).message
    assert "expected a plain nn.Linear" in check("ex06_2", merged_linear=lambda layer: layer.base.weight).message


def test_ex06_3_and_5_counting():
    def count(model, targets, r):
        return sum(r * (m.in_features + m.out_features) for n, m in model.named_modules()
                   if isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in targets))

    def full_matrices(model, targets, r):
        return sum(m.in_features * m.out_features for n, m in model.named_modules()
                   if isinstance(m, nn.Linear) and any(n.endswith("." + t) for t in targets))

    def rank(model, targets, budget):
        per = count(model, targets, 1)
        return budget // per if per else 0

    assert check("ex06_3", count_lora_parameters=count).status == "pass"
    assert "counted the full weight matrices" in check("ex06_3", count_lora_parameters=full_matrices).message
    assert "expected a Python int" in check("ex06_3", count_lora_parameters=lambda m, t, r: 1.5).message
    # Issue 22: matching by substring passed on the tiny BERT alone; look-alike names now tell it apart.
    def substring(model, targets, r):
        return sum(r * (m.in_features + m.out_features) for n, m in model.named_modules()
                   if isinstance(m, nn.Linear) and any(t in n for t in targets))

    def no_dot(model, targets, r):
        return sum(r * (m.in_features + m.out_features) for n, m in model.named_modules()
                   if isinstance(m, nn.Linear) and any(n.endswith(t) for t in targets))

    def any_type(model, targets, r):
        return sum(r * sum(p.shape[0] + p.shape[1] for p in [m.weight.flatten(2).squeeze(-1) if m.weight.dim() > 2 else m.weight])
                   for n, m in model.named_modules()
                   if hasattr(m, "weight") and m.weight is not None and m.weight.dim() >= 2 and any(n == t or n.endswith("." + t) for t in targets))

    assert "merely contain a target" in check("ex06_3", count_lora_parameters=substring).message
    assert "'subquery' ends with 'query'" in check("ex06_3", count_lora_parameters=no_dot).message
    assert check("ex06_3", count_lora_parameters=any_type).status == "fail"
    assert check("ex06_5", largest_rank=rank, count_lora_parameters=count).status == "pass"
    off_by_one = check("ex06_5", largest_rank=lambda m, t, b: rank(m, t, b) + 1).message
    assert "more than the budget" in off_by_one


# ex06_4's right answer and three wrong ones (tests/mutants_table.py uses them too)
class Adapter(nn.Module):
    def __init__(self, hidden, bottleneck):
        super().__init__()
        self.down, self.up = nn.Linear(hidden, bottleneck), nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h):
        return h + self.up(nn.functional.gelu(self.down(h)))


class NoResidual(Adapter):
    def forward(self, h):
        return self.up(nn.functional.gelu(self.down(h)))


class NoZeroInit(Adapter):
    def __init__(self, hidden, bottleneck):
        super().__init__(hidden, bottleneck)
        nn.init.normal_(self.up.weight)


class NoActivation(Adapter):
    def forward(self, h):
        return h + self.up(self.down(h))


def test_ex06_4_adapter():
    assert check("ex06_4", Adapter=Adapter).status == "pass"
    assert "start as the identity" in check("ex06_4", Adapter=NoResidual).message
    assert "start as the identity" in check("ex06_4", Adapter=NoZeroInit).message
    assert "GELU" in check("ex06_4", Adapter=NoActivation).message


def _results():
    from tutorlib.peft import MethodResult

    return [MethodResult("full", "full", 9, 9, 100.0, 400, 1.0, 0.80), MethodResult("lora", "LoRA", 1, 9, 1.0, 100, 1.0, 0.79),
            MethodResult("head", "head", 1, 9, 0.1, 50, 1.0, 0.70)]


def test_ex06_7_reading_the_table():
    res = _results()
    assert check("ex06_7", table_results=res, memory_ratio=4.0, cheapest_good="lora").status == "pass"
    assert "other way round" in check("ex06_7", table_results=res, memory_ratio=0.25, cheapest_good="lora").message
    assert "more than 2 points" in check("ex06_7", table_results=res, memory_ratio=4.0, cheapest_good="head").message
    assert "needs less peak memory" in check("ex06_7", table_results=res, memory_ratio=4.0, cheapest_good="full").message


def test_ex06_6_experiment_with_a_tiny_encoder():
    from transformers import BertConfig, BertModel

    from tutorlib.data import load_reviews, text_collate
    from tutorlib.models import load_tokenizer
    from tutorlib.models import trainable_summary
    from tutorlib.peft import build_model
    from tutorlib.train import Trainer

    torch.manual_seed(0)
    enc = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64))
    val = load_reviews("val", limit=64)  # the exercise's validation slice outside smoke mode
    model = build_model("lora", r=4, encoder=enc)
    untrained = {"exp_model": model, "exp_val": val, "exp_trainable_percent": 1.0, "exp_val_accuracy": 0.5}
    assert "not trained" in check("ex06_6", **untrained).message
    assert "should be the model you trained" in check("ex06_6", **dict(untrained, exp_model=3)).message
    hist = Trainer(model, lr=1e-2, batch_size=8, collate_fn=text_collate(load_tokenizer(), 32), progress=False,
                   log=False).fit(load_reviews("train", limit=8), val, epochs=1)
    pct, acc = trainable_summary(model)["percent"], hist["val_accuracy"][-1]
    state = torch.get_rng_state()
    ns = {"exp_model": model, "exp_val": val, "exp_trainable_percent": pct, "exp_val_accuracy": acc}
    assert check("ex06_6", **ns).status == "pass"
    assert torch.equal(state, torch.get_rng_state())
    assert "not a percentage" in check("ex06_6", **dict(ns, exp_val_accuracy=100 * acc)).message if acc > 0 else True
    assert "exp_trainable_percent" in check("ex06_6", **dict(ns, exp_trainable_percent=pct / 100)).message
    assert "r=4" in check("ex06_6", **dict(ns, exp_model=build_model("lora", r=2, encoder=enc))).message
    # Issue 22: any non-zero lora_B passed, measured on the learner's own exp_val. The grader now re-measures the
    # accuracy from the weights on the validation reviews it loads itself.
    fake = build_model("lora", r=4, encoder=enc)
    with torch.no_grad():
        for name, p in fake.named_parameters():
            if "lora_B" in name:
                p.fill_(0.01)
    own_val = torch.utils.data.Subset(val, [0, 1])  # a hand-picked "validation set" the model happens to get right
    made_up = {"exp_model": fake, "exp_val": own_val, "exp_trainable_percent": pct, "exp_val_accuracy": 1.0}
    message = check("ex06_6", **made_up).message
    assert check("ex06_6", **made_up).status == "fail" and "re-measured from exp_model's weights" in message
    assert "re-measured" in check("ex06_6", **dict(ns, exp_val_accuracy=min(1.0, acc + 0.25) if acc < 0.75 else acc - 0.25)).message


@pytest.mark.parametrize("ex", [f"ex06_{i}" for i in range(1, 8)])
def test_every_check_names_missing_objects(ex):
    result = check(ex)
    assert result.status == "fail" and "not defined" in result.message
