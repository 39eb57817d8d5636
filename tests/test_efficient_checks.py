"""Lesson 03 exercise checks: right answers pass, stubs are 'not attempted', typical mistakes get a precise message,
and the learner's random state is untouched."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tutorlib.grading.registry import run_check


def _stub(*args, **kwargs):
    raise NotImplementedError("ex03_k: write your answer here")


def amp_step(model, x, y, optimizer, scaler, dtype):
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=x.device.type, dtype=dtype):
        loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def amp_no_scale(model, x, y, optimizer, scaler, dtype):
    optimizer.zero_grad()
    with torch.autocast(device_type=x.device.type, dtype=dtype):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def amp_no_autocast(model, x, y, optimizer, scaler, dtype):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def amp_plain_step(model, x, y, optimizer, scaler, dtype):
    optimizer.zero_grad()
    with torch.autocast(device_type=x.device.type, dtype=dtype):
        loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    optimizer.step()
    scaler.update()
    return loss.item()


def accumulate_step(model, x, y, optimizer, micro_batches):
    optimizer.zero_grad()
    total = 0.0
    for xb, yb in zip(x.chunk(micro_batches), y.chunk(micro_batches)):
        loss = F.cross_entropy(model(xb), yb) * len(xb) / len(x)
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total


def accumulate_equal_weights(model, x, y, optimizer, micro_batches):
    optimizer.zero_grad()
    total = 0.0
    for xb, yb in zip(x.chunk(micro_batches), y.chunk(micro_batches)):
        loss = F.cross_entropy(model(xb), yb) / micro_batches
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total


def accumulate_whole_batch(model, x, y, optimizer, micro_batches):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def estimate_mfu(n_params, n_layer, d_model, seq_len, tokens_per_second, peak_flops):
    return (6 * n_params + 12 * n_layer * d_model * seq_len) * tokens_per_second / peak_flops


def checkpointed_forward(blocks, x):
    for b in blocks:
        x = checkpoint(b, x, use_reentrant=False)
    return x


def plain_forward(blocks, x):
    for b in blocks:
        x = b(x)
    return x


def _run(ex, ns):
    return run_check(ex, ns, device="cpu")


@pytest.mark.parametrize("ex,name,right", [
    ("ex03_1", "amp_step", amp_step), ("ex03_2", "accumulate_step", accumulate_step),
    ("ex03_3", "estimate_mfu", estimate_mfu), ("ex03_4", "checkpointed_forward", checkpointed_forward),
])
def test_function_checks_pass_and_stubs_are_not_attempted(ex, name, right):
    state = torch.get_rng_state()
    result = _run(ex, {name: right})
    assert result.status == "pass", result.message
    assert torch.equal(state, torch.get_rng_state())
    assert _run(ex, {name: _stub}).status == "not_attempted"
    assert "is not defined" in _run(ex, {}).message


@pytest.mark.parametrize("fn,fragment", [
    (amp_no_scale, "did not use scaler.scale"),
    (amp_no_autocast, "without autocast"),
    (amp_plain_step, "changed the weights"),
])
def test_amp_mistakes(fn, fragment):
    result = _run("ex03_1", {"amp_step": fn})
    assert result.status == "fail" and fragment in result.message, result.message


@pytest.mark.parametrize("fn,fragment", [
    (accumulate_equal_weights, "share of the batch"),
    (accumulate_whole_batch, "split x and y"),
])
def test_accumulation_mistakes(fn, fragment):
    result = _run("ex03_2", {"accumulate_step": fn})
    assert result.status == "fail" and fragment in result.message, result.message


def test_mfu_mistakes():
    no_attention = lambda n, l, d, t, tps, peak: 6 * n * tps / peak  # noqa: E731
    percent = lambda *a: 100 * estimate_mfu(*a)  # noqa: E731
    assert "attention term" in _run("ex03_3", {"estimate_mfu": no_attention}).message
    assert "percentage" in _run("ex03_3", {"estimate_mfu": percent}).message


def test_checkpointing_without_checkpoint_fails():
    result = _run("ex03_4", {"checkpointed_forward": plain_forward})
    assert result.status == "fail" and "torch.utils.checkpoint" in result.message


def _saving_namespace():
    from tutorlib.efficient import enable_activation_checkpointing, saved_activation_bytes
    from tutorlib.models import GPTConfig, TinyGPT

    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(block_size=32, n_layer=2, n_head=2, d_model=32))
    x = torch.randint(0, 128, (4, 33))
    plain = saved_activation_bytes(lambda: model.loss(x), model)
    ck = enable_activation_checkpointing(copy.deepcopy(model))
    ckpt = saved_activation_bytes(lambda: ck.loss(x), ck)
    return {"exp_model": model, "exp_x": x, "bytes_plain": plain, "bytes_ckpt": ckpt, "saving": 1 - ckpt / plain}


def test_saving_check():
    ns = _saving_namespace()
    assert _run("ex03_5", ns).status == "pass"
    assert "1 - bytes_ckpt / bytes_plain" in _run("ex03_5", dict(ns, saving=100 * ns["saving"])).message
    assert "bytes_ckpt" in _run("ex03_5", dict(ns, bytes_ckpt=ns["bytes_plain"])).message


def test_read_scale_check():
    from tutorlib.efficient import smallest_safe_scale

    values = torch.logspace(-11, -2, 5000)
    k = smallest_safe_scale(values, "fp16", 1e-4)
    assert _run("ex03_6", {"grad_values": values, "safe_log2_scale": k}).status == "pass"
    assert _run("ex03_6", {"grad_values": values, "safe_log2_scale": k + 1}).status == "pass"
    bad = _run("ex03_6", {"grad_values": values, "safe_log2_scale": k + 5})
    assert bad.status == "fail" and "smaller" in bad.message
    assert _run("ex03_6", {"grad_values": values, "safe_log2_scale": "12"}).status == "fail"
