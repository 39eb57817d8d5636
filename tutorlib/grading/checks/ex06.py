"""Checks for lesson 06 (parameter-efficient fine-tuning): LoRA forward and merge, counting LoRA parameters,
a bottleneck adapter, a rank for a parameter budget, a LoRA experiment, and reading the comparison table.

The references are :mod:`tutorlib.peft` (``LoRALinear``, ``BottleneckAdapter``) and the small functions
below; inputs come from the check's own generator on a tiny BERT built here.

>>> from transformers import BertConfig, BertModel
>>> bert = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
...                             intermediate_size=64))
>>> reference_count_lora_parameters(bert, ["query", "value"], 4)
1024
>>> reference_largest_rank(bert, ["query", "value"], 1000)
3
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn

from ..compare import CheckFailed, describe, expect_close, expect_finite, expect_number, expect_tensor
from ..protocol import Learner, exercise

__all__ = ["reference_count_lora_parameters", "reference_largest_rank", "reference_merged_linear",
           "reference_cheapest_close_to_best"]


# --------------------------------------------------------------------------- reference answers


def _targets(model: nn.Module, target_modules: Sequence[str]) -> list[nn.Linear]:
    return [m for n, m in model.named_modules()
            if n and isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in target_modules)]


def reference_count_lora_parameters(model: nn.Module, target_modules: Sequence[str], r: int) -> int:
    """Trainable values LoRA of rank ``r`` adds to the Linear layers whose names end with a target: Σ r·(in + out).

    >>> reference_count_lora_parameters(nn.Sequential(nn.Linear(4, 3)), ["0"], 2)
    14
    """
    return sum(r * (m.in_features + m.out_features) for m in _targets(model, target_modules))


def reference_largest_rank(model: nn.Module, target_modules: Sequence[str], budget: int) -> int:
    """The largest rank whose LoRA parameters fit in ``budget`` (0 if even r = 1 does not).

    >>> reference_largest_rank(nn.Sequential(nn.Linear(4, 3)), ["0"], 20)
    2
    """
    per_rank = reference_count_lora_parameters(model, target_modules, 1)
    return budget // per_rank if per_rank else 0


def reference_merged_linear(layer: Any) -> nn.Linear:
    """A plain ``nn.Linear`` computing what the LoRA ``layer`` computes (``W + scaling·B@A``, same bias).

    >>> from tutorlib.peft import LoRALinear
    >>> type(reference_merged_linear(LoRALinear(nn.Linear(4, 3), r=2))).__name__
    'Linear'
    """
    base = layer.base
    out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                    device=base.weight.device, dtype=base.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(base.weight + layer.scaling * layer.lora_B.weight @ layer.lora_A.weight)
        if base.bias is not None:
            out.bias.copy_(base.bias)
    return out


def reference_cheapest_close_to_best(results: Sequence[Any], points: float = 2.0) -> str:
    """The method with the lowest peak memory among those within ``points`` of the best validation accuracy.

    >>> from tutorlib.peft import MethodResult
    >>> rs = [MethodResult("full", "full", 9, 9, 100, 300, 1, 0.90), MethodResult("lora", "LoRA", 1, 9, 1, 100, 1, 0.89),
    ...       MethodResult("prompt", "prompt", 1, 9, 1, 90, 1, 0.60)]
    >>> reference_cheapest_close_to_best(rs)
    'lora'
    """
    best = max(r.val_accuracy for r in results)
    close = [r for r in results if 100 * r.val_accuracy >= 100 * best - points]
    return min(close, key=lambda r: r.peak_bytes).method


# --------------------------------------------------------------------------- helpers


def _attributes(layer: nn.Module, names: Sequence[str], what: str) -> None:
    missing = [n for n in names if not hasattr(layer, n)]
    if missing:
        raise CheckFailed(f"{what} has no attribute(s) {missing}: keep the names the exercise's __init__ uses")


# --------------------------------------------------------------------------- checks


def _lora_class_of(learner: Any) -> type:
    cls = learner.get("LoRA")
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise CheckFailed("`LoRA` should be the nn.Module class you defined in the exercise cell: run that cell again")
    return cls


def _base_linear(inputs: dict, device: torch.device) -> nn.Linear:
    base = nn.Linear(12, 7)
    with torch.no_grad():
        base.weight.copy_(inputs["W"])
        base.bias.copy_(inputs["b"])
    return base.to(device)


@exercise("ex06_1", points=2, timeout=60)
class LoRAForwardCheck:
    """``LoRA(base, r, alpha).forward``: equals tutorlib's LoRALinear with the same A and B; only A, B train."""

    names = ("LoRA",)
    reference = ("tutorlib.peft.LoRALinear",)
    hints = (
        "the output is the frozen base layer's output plus a low-rank update: base(x) + update.",
        "the update goes through A then B: self.lora_B(self.lora_A(x)), multiplied by self.scaling (alpha / r).",
        "B starts at zero, so right after construction the layer equals base(x); compute inside forward, without no_grad or detach.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"W": torch.randn(7, 12, generator=gen), "b": 0.1 * torch.randn(7, generator=gen), "x": torch.randn(5, 12, generator=gen),
                "A": torch.randn(3, 12, generator=gen), "B": torch.randn(7, 3, generator=gen), "x3": torch.randn(2, 4, 12, generator=gen)}

    def call(self, learner: Learner, inputs: dict) -> dict:
        LoRA, dev = _lora_class_of(learner), learner.device
        try:
            layer = LoRA(copy.deepcopy(_base_linear(inputs, dev)), r=3, alpha=6.0)
        except NotImplementedError:
            raise CheckFailed("LoRA.__init__ raises NotImplementedError: only forward is to be written") from None
        _attributes(layer, ["base", "lora_A", "lora_B", "scaling"], "your LoRA layer")
        layer = layer.to(dev)
        x = inputs["x"].to(dev)
        start = learner.call(layer, x, name="LoRA.forward")
        with torch.no_grad():
            layer.lora_A.weight.copy_(inputs["A"].to(dev))
            layer.lora_B.weight.copy_(inputs["B"].to(dev))
        out = learner.call(layer, x, name="LoRA.forward")
        out3 = learner.call(layer, inputs["x3"].to(dev), name="LoRA.forward on a (2, 4, 12) batch of sequences")
        trainable = sorted(n for n, p in layer.named_parameters() if p.requires_grad)
        grads = False
        if isinstance(out, torch.Tensor):
            layer.zero_grad()
            y = layer(x)
            if y.requires_grad:
                y.sum().backward()
                grads = layer.lora_A.weight.grad is not None and layer.lora_B.weight.grad is not None
        detach = lambda t: t.detach() if isinstance(t, torch.Tensor) else t  # noqa: E731
        return {"start": detach(start), "out": detach(out), "out3": detach(out3), "trainable": trainable, "grads": grads}

    def compare(self, inputs: dict, outputs: dict) -> None:
        from tutorlib.peft import LoRALinear

        base = _base_linear(inputs, torch.device("cpu"))
        x = inputs["x"]
        start = outputs["start"]
        expect_tensor(start, "LoRA(...)(x)", shape=(5, 7), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            plain = base(x)
        expect_close(start.cpu(), plain, "LoRA(...)(x) right after construction",
                     atol=1e-5, rtol=1e-5, hint="B starts at zero, so the output must equal base(x): add the base output")
        ref = LoRALinear(copy.deepcopy(base), r=3, alpha=6.0)
        with torch.no_grad():
            ref.lora_A.weight.copy_(inputs["A"])
            ref.lora_B.weight.copy_(inputs["B"])
            want = ref(x)
            update = x @ inputs["A"].T @ inputs["B"].T
        out = outputs["out"]
        expect_tensor(out, "LoRA(...)(x)", shape=(5, 7))
        expect_finite(out, "LoRA(...)(x)")
        out = out.cpu()
        hint = ""
        if torch.allclose(out, plain + update, atol=1e-4):
            hint = "the low-rank branch must be multiplied by self.scaling (alpha / r)"
        elif torch.allclose(out, want - plain, atol=1e-4):
            hint = "you returned only the low-rank update: add the frozen base layer's output base(x)"
        expect_close(out, want, "LoRA(...)(x) with non-zero A and B", atol=1e-4, rtol=1e-4, hint=hint)
        expect_tensor(outputs["out3"], "LoRA(...)(x) for x of shape (2, 4, 12)", shape=(2, 4, 7))
        trainable = outputs["trainable"]
        if any(n.startswith("base.") for n in trainable):
            raise CheckFailed(f"the base layer's parameters are trainable ({trainable}): LoRA freezes them "
                              "(the given __init__ does this; do not undo it)")
        if not outputs["grads"]:
            raise CheckFailed("no gradient reached lora_A / lora_B: compute the update from self.lora_A and self.lora_B "
                              "inside forward, without torch.no_grad() or .detach()")


def _lora_layer(case: dict, device: torch.device) -> Any:
    from tutorlib.peft import LoRALinear

    base = nn.Linear(10, 6, bias=case["bias"])
    with torch.no_grad():
        base.weight.copy_(case["W"])
        if case["bias"]:
            base.bias.copy_(case["b"])
    layer = LoRALinear(base, r=2, alpha=5.0)
    with torch.no_grad():
        layer.lora_A.weight.copy_(case["A"])
        layer.lora_B.weight.copy_(case["B"])
    return layer.to(device)


@exercise("ex06_2", points=1, timeout=60)
class MergedLinearCheck:
    """``merged_linear(layer)``: a new nn.Linear with W + scaling·B@A and the same bias; the layer is untouched."""

    names = ("merged_linear",)
    reference = ("tutorlib.grading.checks.ex06.reference_merged_linear", "tutorlib.peft.merge_lora")
    hints = (
        "build a fresh nn.Linear with the base layer's in/out features (and a bias only if the base has one).",
        "its weight is layer.base.weight + layer.scaling * layer.lora_B.weight @ layer.lora_A.weight; the bias is the base's.",
        "copy the values in under torch.no_grad() and leave the LoRA layer itself unchanged.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"cases": [{"bias": bias, "W": torch.randn(6, 10, generator=gen), "b": torch.randn(6, generator=gen),
                           "A": torch.randn(2, 10, generator=gen), "B": torch.randn(6, 2, generator=gen)} for bias in (True, False)],
                "x": torch.randn(4, 10, generator=gen)}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev, outs = learner.function("merged_linear"), learner.device, []
        for case in inputs["cases"]:
            out = learner.call(fn, _lora_layer(case, dev), name="merged_linear")
            if not isinstance(out, nn.Linear):
                outs.append({"type": type(out).__name__})
                continue
            with torch.no_grad():
                y = out(inputs["x"].to(dev))
            outs.append({"type": "Linear", "weight": out.weight.detach(), "bias": None if out.bias is None else out.bias.detach(),
                         "y": y})
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        x = inputs["x"]
        for case, out in zip(inputs["cases"], outputs):
            bias = case["bias"]
            what = f"merged_linear(layer) for a layer {'with' if bias else 'without'} bias"
            if out["type"] != "Linear":
                raise CheckFailed(f"{what} returned {out['type']}, expected a plain nn.Linear (the deployable layer)")
            layer = _lora_layer(case, torch.device("cpu"))
            ref = reference_merged_linear(layer)
            weight = expect_tensor(out["weight"], f"the weight of {what}", shape=tuple(ref.weight.shape), device=self.device).cpu()
            hint = ""
            with torch.no_grad():
                if torch.allclose(weight, layer.base.weight + layer.lora_B.weight @ layer.lora_A.weight, atol=1e-5):
                    hint = "multiply B @ A by layer.scaling"
                elif torch.allclose(weight, layer.base.weight, atol=1e-6):
                    hint = "the weight is unchanged: add scaling * lora_B.weight @ lora_A.weight"
            expect_close(weight, ref.weight.detach(), f"the weight of {what}", atol=1e-5, rtol=1e-5, hint=hint)
            if bias != (out["bias"] is not None):
                raise CheckFailed(f"{what}: the base layer {'has' if bias else 'has no'} bias, the merged one "
                                  f"{'has none' if bias else 'has one'}: keep the base's bias as it is")
            if bias:
                expect_close(out["bias"].cpu(), layer.base.bias.detach(), f"the bias of {what}", atol=1e-6, rtol=0)
            with torch.no_grad():
                expect_close(out["y"].cpu(), layer(x), f"{what}(x) vs layer(x)", atol=1e-4, rtol=1e-4)


def _plain_bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=60, hidden_size=24, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40)
    with torch.random.fork_rng():  # only the structure matters for counting
        return BertModel(cfg).eval()


def _from_spec(spec: list) -> nn.Module:
    """A model whose modules are named by ``spec``: rows ``(dotted name, kind, in, out)``, kind "linear" or "conv"."""
    root = nn.Module()
    for name, kind, fan_in, fan_out in spec:
        *path, leaf = name.split(".")
        parent = root
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        layer = nn.Linear(fan_in, fan_out) if kind == "linear" else nn.Conv1d(fan_in, fan_out, 1)
        parent.add_module(leaf, layer)
    return root


def _tricky_spec(gen: torch.Generator) -> list:
    """Module names where matching by substring, or by suffix without the dot, or ignoring the type, counts wrong."""
    def size() -> int:
        return int(torch.randint(3, 30, (1,), generator=gen))

    spec = []
    for i in range(2):
        spec += [(f"blocks.{i}.attn.query", "linear", size(), size()),
                 (f"blocks.{i}.attn.query_proj", "linear", size(), size()),   # contains "query", does not end with it
                 (f"blocks.{i}.attn.subquery", "linear", size(), size()),     # ends with "query", not with ".query"
                 (f"blocks.{i}.mlp.dense", "linear", size(), size()),
                 (f"blocks.{i}.mlp.dense_out", "linear", size(), size())]
    spec += [("value", "linear", size(), size()),                            # a top-level name equal to the target
             ("stem.query", "conv", size(), size())]                         # the right name, not an nn.Linear
    return spec


_BERT_CASES = ((["query", "value"], 4), (["query", "key", "value", "dense"], 2), (["dense"], 8),
               (["attention.output.dense"], 3))


@exercise("ex06_3", points=1, timeout=60)
class CountLoraParametersCheck:
    """``count_lora_parameters(model, target_modules, r)`` equals the reference on a tiny BERT and on a model whose
    module names tell suffix matching (``name == t or name.endswith("." + t)``, nn.Linear only) from substring matching."""

    names = ("count_lora_parameters",)
    hints = (
        "walk model.named_modules(); keep the nn.Linear modules whose name equals a target or ends with '.' + target.",
        "each kept layer adds r * (in_features + out_features).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        spec = _tricky_spec(gen)
        r = int(torch.randint(2, 9, (1,), generator=gen))
        return {"spec": spec, "tricky": [(["query", "value"], r), (["dense"], r), (["blocks.1.attn.query"], r)]}

    def _cases(self, inputs: dict) -> list:
        bert, tricky = _plain_bert(), _from_spec(inputs["spec"])
        return [("tiny_bert", bert, t, r) for t, r in _BERT_CASES] + \
               [("a model with look-alike names", tricky, list(t), r) for t, r in inputs["tricky"]]

    def call(self, learner: Any, inputs: dict) -> list:
        count = learner.function("count_lora_parameters")
        return [learner.call(count, model.to(learner.device), targets, r, name="count_lora_parameters")
                for _, model, targets, r in self._cases(inputs)]

    def compare(self, inputs: dict, outputs: list) -> None:
        for (label, model, targets, r), got in zip(self._cases(inputs), outputs):
            call = f"count_lora_parameters({label}, {targets}, r={r})"
            got = expect_number(got, f"the result of {call}", int)
            want = reference_count_lora_parameters(model, targets, r)
            if got == want:
                continue
            linear = _targets(model, targets)
            hint = "add r * (in_features + out_features) for every nn.Linear whose name ends with a target"
            substring = sum(r * (m.in_features + m.out_features) for n, m in model.named_modules()
                            if n and isinstance(m, nn.Linear) and any(t in n for t in targets))
            no_dot = sum(r * (m.in_features + m.out_features) for n, m in model.named_modules()
                         if n and isinstance(m, nn.Linear) and any(n.endswith(t) for t in targets))
            any_type = sum(r * (m.in_channels + m.out_channels) if isinstance(m, nn.Conv1d) else
                           r * (m.in_features + m.out_features) for n, m in model.named_modules()
                           if isinstance(m, (nn.Linear, nn.Conv1d)) and any(n == t or n.endswith("." + t) for t in targets))
            if got == sum(m.in_features * m.out_features for m in linear):
                hint = "you counted the full weight matrices: LoRA adds r·(in + out) per layer, not in·out"
            elif got == sum(2 * r * m.in_features for m in linear):
                hint = "in and out features differ in some layers (the feed-forward ones): use both"
            elif label == "tiny_bert" and targets == ["dense"] and got == reference_count_lora_parameters(model, ["attention.output.dense"], r):
                hint = "'dense' matches every module whose name ends with '.dense' (attention output and both feed-forward layers)"
            elif got == substring:
                hint = ("you matched names that merely contain a target (like 'query_proj' for 'query'): a target matches a "
                        "name that equals it or ends with '.' + target")
            elif got == no_dot:
                hint = "'subquery' ends with 'query' but is not the module 'query': match name == t or name.endswith('.' + t)"
            elif got == any_type:
                hint = "only nn.Linear layers get LoRA here: skip other modules with a matching name (check isinstance)"
            raise CheckFailed(f"{call} gave {got:,}, expected {want:,}: {hint}")


@exercise("ex06_4", points=2, timeout=60)
class AdapterCheck:
    """``Adapter(hidden, bottleneck)``: identity at init, reference parameter count, same outputs as BottleneckAdapter."""

    names = ("Adapter",)
    reference = ("tutorlib.peft.BottleneckAdapter",)
    hints = (
        "two layers: down = nn.Linear(hidden, bottleneck) and up = nn.Linear(bottleneck, hidden), with a GELU between them.",
        "forward returns h + up(gelu(down(h))): the residual connection keeps the input.",
        "initialise up's weight and bias to zero so that the adapter starts as the identity.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        from tutorlib.peft import BottleneckAdapter

        with torch.random.fork_rng():
            shapes = {k: v.shape for k, v in BottleneckAdapter(24, 5).state_dict().items()}
        return {"h": torch.randn(3, 4, 24, generator=gen), "state": {k: torch.randn(s, generator=gen) for k, s in shapes.items()}}

    def call(self, learner: Learner, inputs: dict) -> dict:
        from ..compare import NotAttempted

        Adapter, dev = learner.get("Adapter"), learner.device
        if not isinstance(Adapter, type) or not issubclass(Adapter, nn.Module):
            raise CheckFailed("`Adapter` should be an nn.Module class: define `class Adapter(nn.Module):`")
        try:
            adapter = Adapter(24, 5)
        except NotImplementedError:
            raise NotAttempted("Adapter still raises NotImplementedError: write __init__ and forward") from None
        except Exception as exc:  # noqa: BLE001
            raise CheckFailed(f"Adapter(24, 5) raised {type(exc).__name__}: {exc}") from None
        adapter = adapter.to(dev)
        _attributes(adapter, ["down", "up"], "your Adapter")
        h = inputs["h"].to(dev)
        start = learner.call(adapter, h, name="Adapter.forward")
        n_params = sum(p.numel() for p in adapter.parameters())
        try:
            adapter.load_state_dict({k: v.to(dev) for k, v in inputs["state"].items()})
        except RuntimeError as exc:
            raise CheckFailed(f"your Adapter's weights are not down.weight/down.bias/up.weight/up.bias of the expected "
                              f"shapes: {str(exc).splitlines()[0]}") from None
        out = learner.call(adapter, h, name="Adapter.forward")
        with torch.no_grad():
            no_act = h + adapter.up(adapter.down(h))
        detach = lambda t: t.detach() if isinstance(t, torch.Tensor) else t  # noqa: E731
        return {"n_params": n_params, "start": detach(start), "out": detach(out), "no_act": no_act}

    def compare(self, inputs: dict, outputs: dict) -> None:
        from tutorlib.peft import BottleneckAdapter

        with torch.random.fork_rng():
            ref = BottleneckAdapter(24, 5)
        n_ref = sum(p.numel() for p in ref.parameters())
        if outputs["n_params"] != n_ref:
            raise CheckFailed(f"Adapter(24, 5) has {outputs['n_params']} parameters, expected {n_ref}: down = nn.Linear(hidden, bottleneck), "
                              "up = nn.Linear(bottleneck, hidden), both with bias, and nothing else trainable")
        h = inputs["h"]
        start = expect_tensor(outputs["start"], "Adapter(24, 5)(h)", shape=(3, 4, 24), dtype=torch.float32, device=self.device)
        expect_close(start.cpu(), h, "Adapter(24, 5)(h) right after construction", atol=1e-6, rtol=0,
                     hint="the adapter must start as the identity: initialise up's weight and bias to zero and add h (the residual)")
        ref.load_state_dict(inputs["state"])
        with torch.no_grad():
            want = ref(h)
        out = expect_tensor(outputs["out"], "Adapter(24, 5)(h)", shape=(3, 4, 24)).cpu()
        hint = ""
        if torch.allclose(out, want - h, atol=1e-4):
            hint = "add the input h to the bottleneck's output (the residual connection)"
        elif torch.allclose(out, outputs["no_act"].cpu(), atol=1e-4):
            hint = "apply the GELU non-linearity between down and up"
        expect_close(out, want, "Adapter(24, 5)(h) with trained weights", atol=1e-4, rtol=1e-4, hint=hint)


_RANK_CASES = ((["query", "value"], 1000), (["query", "value"], 96 * 4), (["query", "key", "value", "dense"], 5000),
                (["dense"], 50))


@exercise("ex06_5", points=1, timeout=60)
class LargestRankCheck:
    """``largest_rank(model, target_modules, budget)``: the largest r whose LoRA parameters fit the budget."""

    names = ("largest_rank",)
    hints = (
        "the LoRA parameter count is proportional to r: count it for r = 1 first (count_lora_parameters(model, targets, 1)).",
        "the largest r is budget // (count for r = 1), or 0 when even r = 1 does not fit.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"cases": list(_RANK_CASES) + [(["query", "value"], int(torch.randint(100, 20000, (1,), generator=gen)))]}

    def call(self, learner: Any, inputs: dict) -> list:
        largest_rank = learner.function("largest_rank")
        model = _plain_bert().to(learner.device)
        return [learner.call(largest_rank, model, list(targets), budget_, name="largest_rank")
                for targets, budget_ in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        model = _plain_bert()
        for (targets, budget_), got in zip(inputs["cases"], outputs):
            targets = list(targets)
            call = f"largest_rank(tiny_bert, {targets}, budget={budget_})"
            got = expect_number(got, f"the result of {call}", int)
            want = reference_largest_rank(model, targets, budget_)
            if got != want:
                used = reference_count_lora_parameters(model, targets, max(got, 0))
                if got > want:
                    hint = f"r = {got} needs {used:,} parameters, more than the budget"
                else:
                    hint = f"r = {want} still fits ({reference_count_lora_parameters(model, targets, want):,} ≤ {budget_:,})"
                if want == 0:
                    hint = "even r = 1 does not fit this budget: return 0"
                raise CheckFailed(f"{call} gave {got}, expected {want}: {hint}")


def _encoder_config(model: nn.Module) -> str | None:
    for m in model.modules():
        cfg = getattr(m, "config", None)
        if hasattr(cfg, "to_json_string") and hasattr(cfg, "model_type"):
            return cfg.to_json_string()
    return None


def _lora_layers(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """Module name -> LoRA rank, read from the ``lora_B`` weights of a state_dict."""
    layers = {}
    for key, value in state.items():
        if ".lora_B." in key and key.endswith(".weight") and getattr(value, "dim", lambda: 0)() == 2:
            layers[key.split(".lora_B.")[0]] = int(value.shape[1])
    return layers


@exercise("ex06_6", points=1, timeout=300)
class LoraExperimentCheck:
    """The LoRA experiment: ``exp_model`` is LoRA r=4 on query/value, trained; the reported numbers are its own.

    The grader rebuilds the model from its weights (all of them cross to the grader) and re-measures the
    trainable share and the validation accuracy itself, on the validation reviews it loads (not on the
    learner's ``exp_val``), so a number typed in or measured on other data fails."""

    names = ("exp_model", "exp_trainable_percent", "exp_val_accuracy")
    hints = (
        "exp_model = build_model('lora', r=4, target_modules=('query', 'value'), encoder=minilm), then Trainer(...).fit"
        "(exp_train, exp_val, epochs=1) with lr=DEFAULT_LR['lora'].",
        "report trainable_summary(exp_model)['percent'] and float(history['val_accuracy'][-1]).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Any, inputs: dict) -> dict:
        from tutorlib.runtime import budget

        model = learner.get("exp_model")
        out: dict[str, Any] = {"percent": learner.get("exp_trainable_percent"), "accuracy": learner.get("exp_val_accuracy"),
                               "val_limit": budget(full=64, smoke=8)}
        if isinstance(model, nn.Module):
            out["state"] = dict(model.state_dict())
            out["config"] = _encoder_config(model)
        else:
            out["state"] = describe(model)
        return out

    def compare(self, inputs: dict, outputs: dict) -> None:
        import json

        from transformers import AutoConfig, AutoModel

        from tutorlib.data import load_reviews, text_collate
        from tutorlib.models import count_parameters, load_tokenizer
        from tutorlib.peft import build_model
        from tutorlib.train import evaluate

        state = outputs["state"]
        if not isinstance(state, dict):
            raise CheckFailed(f"`exp_model` is {state}, it should be the model you trained (an nn.Module)")
        layers = _lora_layers(state)
        if not layers:
            raise CheckFailed("`exp_model` has no LoRA layers: build it with build_model('lora', r=4, ...)")
        names = {n.rsplit(".", 1)[-1] for n in layers}
        if names != {"query", "value"}:
            raise CheckFailed(f"`exp_model` adapts {sorted(names)}, the exercise asks for query and value")
        ranks = set(layers.values())
        if ranks != {4}:
            raise CheckFailed(f"`exp_model` has LoRA rank(s) {sorted(ranks)}, the exercise asks for r=4")
        if not any(bool(state[k].abs().sum() > 0) for k in state if ".lora_B." in k):
            raise CheckFailed("`exp_model`'s lora_B weights are all zero: it was not trained — run the Trainer cell")
        if not isinstance(outputs.get("config"), str):
            raise CheckFailed("`exp_model` has no transformers encoder: build it with build_model('lora', ..., encoder=minilm)")
        cfg = json.loads(outputs["config"])
        with torch.random.fork_rng():
            encoder = AutoModel.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
            model = build_model("lora", r=4, target_modules=("query", "value"), encoder=encoder)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0][:300]
            raise CheckFailed(f"`exp_model` is not the model build_model('lora', r=4, target_modules=('query', 'value')) "
                              f"makes ({first})") from None
        counts = count_parameters(model)
        trainable, total = counts.trainable, counts.total
        reported = expect_number(outputs["percent"], "`exp_trainable_percent`", float)
        expect_close(reported, 100.0 * trainable / total, "`exp_trainable_percent`", atol=1e-3, rtol=0,
                     hint="100 × trainable / total parameters of exp_model (a percentage, not a fraction)")
        acc = expect_number(outputs["accuracy"], "`exp_val_accuracy`", float)
        limit = outputs["val_limit"]
        if not isinstance(limit, int) or limit <= 0:
            raise CheckFailed("the check could not tell which validation slice the exercise uses")
        data = load_reviews("val", limit=limit)
        measured = evaluate(model, data, device="cpu", batch_size=64,
                            collate_fn=text_collate(load_tokenizer(), 64))["val_accuracy"]
        hint = "a fraction between 0 and 1, not a percentage" if abs(acc - 100 * measured) < 1e-3 else \
            (f"report the validation accuracy of exp_model on exp_val = load_reviews('val', limit={limit}) "
             "(history['val_accuracy'][-1])")
        expect_close(acc, measured, "`exp_val_accuracy` (re-measured from exp_model's weights)", atol=1e-4, rtol=0, hint=hint)


@exercise("ex06_7", points=1, timeout=60)
class ReadTableCheck:
    """Reading the comparison: ``memory_ratio`` (full / LoRA peak) and ``cheapest_good`` from ``table_results``."""

    names = ("table_results", "memory_ratio", "cheapest_good")
    hints = (
        "memory_ratio = peak_bytes of the 'full' row / peak_bytes of the 'lora' row (how many times more memory full fine-tuning needs).",
        "cheapest_good: among the methods within 2 points of the best validation accuracy, the one with the lowest peak_bytes (its r.method).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        results = learner.get("table_results")
        if not isinstance(results, (list, tuple)) or not results or not all(
                hasattr(r, "peak_bytes") and hasattr(r, "method") and hasattr(r, "val_accuracy") for r in results):
            raise CheckFailed("`table_results` should be the list compare_methods returned: run the cell that makes it")
        rows = [{"method": str(r.method), "peak_bytes": float(r.peak_bytes), "val_accuracy": float(r.val_accuracy)} for r in results]
        return {"rows": rows, "ratio": learner.get("memory_ratio"), "choice": learner.get("cheapest_good")}

    def compare(self, inputs: dict, outputs: dict) -> None:
        from types import SimpleNamespace

        results = [SimpleNamespace(**r) for r in outputs["rows"]]
        by = {r.method: r for r in results}
        if not {"full", "lora"} <= set(by):
            raise CheckFailed("`table_results` must include the 'full' and 'lora' methods: keep the method list as given")
        ratio = expect_number(outputs["ratio"], "`memory_ratio`", float)
        want = by["full"].peak_bytes / by["lora"].peak_bytes
        hint = "divide full fine-tuning's peak by LoRA's (not the other way round)" if abs(ratio - 1 / want) < 1e-3 else \
            "peak_bytes of the 'full' row divided by peak_bytes of the 'lora' row"
        expect_close(ratio, want, "`memory_ratio`", atol=1e-3, rtol=1e-3, hint=hint)
        choice = outputs["choice"]
        if not isinstance(choice, str):
            raise CheckFailed(f"`cheapest_good` should be a method name such as 'lora' (a str), got {type(choice).__name__}")
        expected = reference_cheapest_close_to_best(results)
        if choice != expected:
            if choice not in by:
                raise CheckFailed(f"`cheapest_good` is {choice!r}, which is not a method of the table: use a value of "
                                  f"r.method, one of {sorted(by)}")
            best = max(r.val_accuracy for r in results)
            mine = by[choice]
            if 100 * mine.val_accuracy < 100 * best - 2.0:
                raise CheckFailed(f"{choice!r} has {100 * mine.val_accuracy:.1f} % validation accuracy, more than 2 points "
                                  f"below the best ({100 * best:.1f} %)")
            raise CheckFailed(f"{choice!r} is within 2 points of the best, but {expected!r} is too and needs less peak memory")
