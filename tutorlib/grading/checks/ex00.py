"""Checks for lesson 00 (welcome & toolkit): tensors, metrics, parameters, one training step, normalisation.

Each check follows the protocol (:mod:`tutorlib.grading.protocol`): ``inputs`` draws them from the
generator it is given, ``call`` runs the learner's function on them (on the device the course runs
on) and returns plain data, ``compare`` checks that data against the reference implementations below.

>>> import torch
>>> tuple(reference_make_batch(2, torch.device("cpu")).shape)
(2, 1, 8, 8)
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..compare import CheckFailed, expect_close, expect_finite, expect_number, expect_tensor
from ..protocol import Learner, exercise

__all__ = [
    "reference_make_batch",
    "reference_accuracy",
    "reference_count_trainable",
    "reference_train_step",
    "reference_normalize",
]


# --------------------------------------------------------------------------- reference answers


def reference_make_batch(n: int, device: torch.device) -> torch.Tensor:
    """``n`` random 8×8 single-channel images, uniform in [0, 1), float32, on ``device``.

    >>> reference_make_batch(3, torch.device("cpu")).dtype
    torch.float32
    """
    return torch.rand(n, 1, 8, 8, device=device)


def reference_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose largest logit is at the label's index.

    >>> reference_accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
    0.5
    """
    return (logits.argmax(dim=1) == labels).float().mean().item()


def reference_count_trainable(model: nn.Module) -> int:
    """Number of values in the parameters that will be trained (``requires_grad``).

    >>> reference_count_trainable(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def reference_train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
    """One optimisation step with cross-entropy; returns the loss before the step.

    >>> m = nn.Linear(4, 3); opt = torch.optim.SGD(m.parameters(), lr=0.1)
    >>> isinstance(reference_train_step(m, torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]), opt), float)
    True
    """
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def reference_normalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise each sample (dim 0) to mean 0 and standard deviation 1 over all its other dims.

    >>> reference_normalize(torch.tensor([[1.0, 3.0]]))
    tensor([[-1.0000,  1.0000]])
    """
    dims = tuple(range(1, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, correction=0)
    return (x - mean) / (std + eps)


# --------------------------------------------------------------------------- checks


def _seed(gen: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=gen))


@exercise("ex00_1", points=1, timeout=60)
class MakeBatchCheck:
    """``make_batch(n, device)``: shape, dtype, device, values in [0, 1), random and seedable."""

    names = ("make_batch",)
    hints = (
        "torch has a function that draws uniform values in [0, 1) for a given shape; pass device=device to it.",
        "the shape is (n, 1, 8, 8): n images, 1 channel, 8 rows, 8 columns.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"sizes": [4, 1], "big": 64, "seed": _seed(gen)}

    def call(self, learner: Learner, inputs: dict) -> dict:
        make_batch, dev = learner.function("make_batch"), learner.device
        batches = [learner.call(make_batch, n, dev, name=f"make_batch({n}, {dev})") for n in inputs["sizes"]]
        big = learner.call(make_batch, inputs["big"], dev, name=f"make_batch({inputs['big']}, {dev})")
        torch.manual_seed(inputs["seed"])  # the protocol restores the learner's random state afterwards
        first = learner.call(make_batch, 4, dev, name="make_batch")
        torch.manual_seed(inputs["seed"])
        second = learner.call(make_batch, 4, dev, name="make_batch")
        return {"batches": batches, "big": big, "first": first, "second": second}

    def compare(self, inputs: dict, outputs: dict) -> None:
        for n, out in zip(inputs["sizes"], outputs["batches"]):
            what = f"the result of make_batch({n}, {self.device})"
            expect_tensor(out, what, shape=(n, 1, 8, 8), dtype=torch.float32, device=self.device)
            expect_finite(out, what)
            low, high = out.min().item(), out.max().item()
            if low < 0 or high >= 1:
                raise CheckFailed(
                    f"{what} has values from {low:.3g} to {high:.3g}, expected them in [0, 1): use torch.rand (not torch.randn)"
                )
        n = inputs["big"]
        batch = expect_tensor(outputs["big"], f"the result of make_batch({n}, {self.device})", shape=(n, 1, 8, 8))
        if torch.unique(batch).numel() < batch.numel() // 2:
            raise CheckFailed(
                f"make_batch({n}, {self.device}) has only {torch.unique(batch).numel()} distinct values in {batch.numel()}: "
                "the images should be random (torch.rand)"
            )
        first = expect_tensor(outputs["first"], "make_batch(4, device)", shape=(4, 1, 8, 8))
        second = expect_tensor(outputs["second"], "make_batch(4, device)", shape=(4, 1, 8, 8))
        if not torch.equal(first, second):
            raise CheckFailed(
                "make_batch(4, device) gives different images after the same torch.manual_seed(...): "
                "draw the values with torch's generator (torch.rand), not Python's random or NumPy, so runs are reproducible"
            )


@exercise("ex00_2", points=1, timeout=60)
class AccuracyCheck:
    """``accuracy(logits, labels)``: a Python float equal to the reference on random, perfect and all-wrong batches."""

    names = ("accuracy",)
    hints = (
        "the predicted class of a row is the index of its largest logit: logits.argmax(dim=1).",
        "compare with labels, turn the booleans into floats, take the mean, and return it with .item().",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        n, k = int(torch.randint(20, 60, (1,), generator=gen)), int(torch.randint(3, 8, (1,), generator=gen))
        logits = torch.randn(n, k, generator=gen)
        perfect = logits.argmax(dim=1)
        cases = [("random labels", torch.randint(k, (n,), generator=gen)),
                 ("labels that all match", perfect), ("labels that never match", (perfect + 1) % k)]
        return {"logits": logits, "cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        accuracy, dev = learner.function("accuracy"), learner.device
        logits = inputs["logits"].to(dev)
        return [learner.call(accuracy, logits, labels.to(dev), name="accuracy") for _, labels in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        logits = inputs["logits"]
        for (name, lab), got in zip(inputs["cases"], outputs):
            call = f"accuracy(logits, labels) with {name}"
            got = expect_number(got, f"the result of {call}", float)
            want = reference_accuracy(logits, lab)
            if abs(got - want) > 1e-6:
                hint = ""
                correct = round(want * len(lab))
                if abs(got - correct) < 1e-6 and correct not in (0, 1):
                    hint = "you returned the number of correct predictions: divide by the batch size"
                elif abs(got - 100 * want) < 1e-4 and want > 0:
                    hint = "return a fraction between 0 and 1, not a percentage"
                expect_close(got, want, f"the result of {call}", atol=1e-6, rtol=0, hint=hint)


def _frozen_model(widths: list[int]) -> nn.Module:
    h1, h2 = widths
    model = nn.Sequential(nn.Linear(10, h1), nn.BatchNorm1d(h1), nn.ReLU(), nn.Linear(h1, h2), nn.Linear(h2, 3))
    model[0].requires_grad_(False)  # a frozen first layer, as in transfer learning
    return model


def _count_models(widths: list[int], frozen: int) -> list[tuple[str, nn.Module]]:
    return [("a model whose first layer is frozen", _frozen_model(widths)),
            ("a fully frozen model", nn.Linear(frozen, frozen).requires_grad_(False))]


@exercise("ex00_3", points=1, timeout=60)
class CountTrainableCheck:
    """``count_trainable(model)``: an int equal to the number of trainable values, frozen ones excluded."""

    names = ("count_trainable",)
    hints = (
        "model.parameters() gives the parameter tensors; p.requires_grad says whether p is trained.",
        "add p.numel() (the number of values in p) over the parameters with p.requires_grad.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"widths": [int(torch.randint(12, 40, (1,), generator=gen)), int(torch.randint(4, 12, (1,), generator=gen))],
                "frozen": int(torch.randint(3, 9, (1,), generator=gen))}

    def call(self, learner: Learner, inputs: dict) -> list:
        count_trainable = learner.function("count_trainable")
        models = _count_models(inputs["widths"], inputs["frozen"])
        return [learner.call(count_trainable, m.to(learner.device), name="count_trainable") for _, m in models]

    def compare(self, inputs: dict, outputs: list) -> None:
        for (label, model), got in zip(_count_models(inputs["widths"], inputs["frozen"]), outputs):
            got = expect_number(got, f"the result of count_trainable on {label}", int)
            want = reference_count_trainable(model)
            if got == want:
                continue
            everything = sum(p.numel() for p in model.parameters())
            if got == everything:
                hint = "you counted the frozen parameters too: only count parameters with p.requires_grad"
            elif got == sum(1 for p in model.parameters() if p.requires_grad) or got == len(list(model.parameters())):
                hint = "you counted parameter tensors: add up the number of values in each (p.numel())"
            elif got == sum(v.numel() for v in model.state_dict().values()):
                hint = "state_dict() also holds buffers such as BatchNorm's running statistics: use model.parameters()"
            else:
                hint = "add p.numel() over model.parameters() for the p with p.requires_grad"
            raise CheckFailed(f"wrong trainable-parameter count on {label}: got {got:,}, expected {want:,}: {hint}")


def _small_classifier(state: dict[str, torch.Tensor] | None = None, gen: torch.Generator | None = None) -> nn.Module:
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    with torch.no_grad():
        if state is not None:
            model.load_state_dict(state)
        else:
            for p in model.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return model


def _grads(model: nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]


_MORE_STEPS = 15


@exercise("ex00_4", points=2, timeout=60)
class TrainStepCheck:
    """``train_step(model, x, y, optimizer)``: gradients flow, parameters move like the reference's, the loss falls."""

    names = ("train_step",)
    hints = (
        "one step is: zero the gradients, compute the loss, backpropagate, update the parameters.",
        "optimizer.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); optimizer.step(); return loss.item()",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        state = _small_classifier(gen=gen).state_dict()
        return {"state": dict(state), "x": torch.randn(32, 16, generator=gen), "y": torch.randint(4, (32,), generator=gen),
                "lr": 0.5}

    def call(self, learner: Learner, inputs: dict) -> dict:
        train_step, dev = learner.function("train_step"), learner.device
        model = _small_classifier(inputs["state"]).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=inputs["lr"])
        x, y = inputs["x"].to(dev), inputs["y"].to(dev)
        steps = []
        for _ in (1, 2):
            loss = learner.call(train_step, model, x, y, opt, name="train_step", mutable=(0, 3))
            steps.append({"loss": loss, "grads": _grads(model), "params": [p.detach().clone() for p in model.parameters()]})
        more = [learner.call(train_step, model, x, y, opt, name="train_step", mutable=(0, 3)) for _ in range(_MORE_STEPS)]
        return {"steps": steps, "more": more}

    def compare(self, inputs: dict, outputs: dict) -> None:
        ref_model = _small_classifier(inputs["state"])
        start = [p.detach().clone() for p in ref_model.parameters()]
        ref_opt = torch.optim.SGD(ref_model.parameters(), lr=inputs["lr"])
        x, y = inputs["x"], inputs["y"]
        names = [n for n, _ in ref_model.named_parameters()]
        tol = {"atol": 1e-5, "rtol": 1e-4}
        for step, got in enumerate(outputs["steps"], start=1):
            loss = expect_number(got["loss"], f"the value train_step returned (call {step})", float)
            ref_before = _grads(ref_model)
            ref_loss = reference_train_step(ref_model, x, y, ref_opt)
            grads = got["grads"]
            if any(g is None for g in grads):
                raise CheckFailed(
                    "gradient missing: after train_step some parameters have no .grad: call loss.backward() "
                    "before optimizer.step() (and do not zero the gradients after the step)"
                )
            params = [p.cpu() for p in got["params"]]
            if step == 1 and all(torch.equal(p, s) for p, s in zip(params, start)):
                raise CheckFailed("parameters unchanged after train_step: call optimizer.step() after loss.backward()")
            expect_close(
                loss, ref_loss, f"the loss train_step returned (call {step})", **tol,
                hint="return the cross-entropy of model(x) and y computed before the step, as loss.item()",
            )
            ref_grads = _grads(ref_model)
            if step == 2 and all(
                g is not None and r is not None and b is not None and torch.allclose(g.cpu(), r + b, **tol)
                for g, r, b in zip(grads, ref_grads, ref_before)
            ):
                raise CheckFailed(
                    "the gradients of the second call include those of the first: call optimizer.zero_grad() "
                    "at the start of train_step, otherwise gradients add up across steps"
                )
            for name, p, r in zip(names, params, ref_model.parameters()):
                expect_close(
                    p, r.detach(), f"parameter {name} after call {step} of train_step", **tol,
                    hint="one step should be: optimizer.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); optimizer.step()",
                )
        losses = [expect_number(v, "the value train_step returned", float) for v in outputs["more"]]
        for _ in range(_MORE_STEPS):
            ref_loss = reference_train_step(ref_model, x, y, ref_opt)
        if not losses[-1] < losses[0]:
            raise CheckFailed(
                f"the loss did not fall over {_MORE_STEPS} more calls of train_step (from {losses[0]:.4f} to {losses[-1]:.4f})"
            )
        expect_close(losses[-1], ref_loss, f"the loss after {_MORE_STEPS + 2} calls of train_step", atol=1e-4, rtol=1e-3)


@exercise("ex00_5", points=2, timeout=60)
class NormalizeCheck:
    """``normalize(x)``: per-sample standardisation, same values as the reference, input left unchanged."""

    names = ("normalize",)
    hints = (
        "take the mean and the standard deviation of each sample over every dim but the first (keepdim=True).",
        "use the population standard deviation (correction=0) and divide by (std + eps), so a constant sample gives 0.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        images = 3 * torch.randn(6, 1, 8, 8, generator=gen) + 2
        table = torch.randn(5, 10, generator=gen) * torch.linspace(0.5, 4, 10)
        table[2] = 7.0  # a constant sample: its standard deviation is 0
        return {"cases": [("a batch of images of shape (6, 1, 8, 8)", images),
                          ("a table of shape (5, 10) with a constant row", table), ("a float64 batch", images.double())]}

    def call(self, learner: Learner, inputs: dict) -> list:
        normalize = learner.function("normalize")
        return [learner.call(normalize, x.to(learner.device), name="normalize") for _, x in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        for (label, x), out in zip(inputs["cases"], outputs):
            what = f"normalize(x) for {label}"
            ref = reference_normalize(x)
            expect_tensor(out, what, shape=ref.shape, dtype=ref.dtype, device=self.device)
            expect_finite(out, what)
            out = out.detach().cpu()
            hint = ""
            dims = tuple(range(1, x.dim()))
            unbiased = (x - x.mean(dim=dims, keepdim=True)) / (x.std(dim=dims, keepdim=True) + 1e-5)
            whole = (x - x.mean()) / (x.std(correction=0) + 1e-5)
            if torch.allclose(out, unbiased, atol=1e-5, rtol=1e-4):
                hint = "you used the unbiased standard deviation: pass correction=0 (unbiased=False)"
            elif torch.allclose(out, whole, atol=1e-5, rtol=1e-4):
                hint = ("you normalised the whole batch at once: take the mean and std of each sample over "
                        "dims 1.. (dim=tuple(range(1, x.dim())), keepdim=True)")
            expect_close(out, ref, what, atol=1e-5, rtol=1e-4, hint=hint)
