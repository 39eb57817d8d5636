"""Quantization: our int8 vs torch's quantized tensors and observers, fake quantization, QAT, torchao and torch.ao."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from tutorlib.compress import (FakeQuantize, QATLayer, calibrate, count_weights, cpu_int8_support, dequantize,
                               fake_quantize, fold_batchnorm, int8_state_dict, model_bytes, prepare_qat, qparams,
                               qrange, quantization_error, quantize, quantize_legacy, quantize_torchao,
                               prune_magnitude)
from tutorlib.data import load_digits
from tutorlib.models import SmallCNN
from tutorlib.train import Trainer

warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated.*")
warnings.filterwarnings("ignore", category=DeprecationWarning)


def _torch_qparams(x, per_channel: bool, symmetric: bool, dtype=torch.qint8):
    from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

    if per_channel:
        scheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        obs = PerChannelMinMaxObserver(ch_axis=0, dtype=dtype, qscheme=scheme)
    else:
        scheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        obs = MinMaxObserver(dtype=dtype, qscheme=scheme)
    obs(x)
    return obs.calculate_qparams()


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
def test_qparams_match_torch_observers(per_channel, symmetric):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 7, generator=g) * torch.tensor([0.1, 1.0, 3.0, 0.5, 2.0])[:, None] + 0.3
    scale, zp = qparams(x, axis=0 if per_channel else None, symmetric=symmetric)
    ref_scale, ref_zp = _torch_qparams(x, per_channel, symmetric)
    assert torch.allclose(scale, ref_scale.reshape(scale.shape), rtol=1e-6)
    assert torch.equal(zp, ref_zp.reshape(zp.shape).to(torch.int64))


def test_quint8_qparams_match_torch():
    x = torch.tensor([-0.7, 0.1, 2.3, 1.1])
    scale, zp = qparams(x, qmin=0, qmax=255)
    ref_scale, ref_zp = _torch_qparams(x, False, False, dtype=torch.quint8)
    assert torch.allclose(scale, ref_scale.reshape(())) and int(zp) == int(ref_zp)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_tensor_quantize_dequantize_match_torch(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 6, generator=g) * 2
    scale, zp = qparams(x)
    q = quantize(x, scale, zp)
    ref = torch.quantize_per_tensor(x, float(scale), int(zp), torch.qint8)
    assert q.dtype == torch.int8
    assert torch.equal(q, ref.int_repr())
    assert torch.allclose(dequantize(q, scale, zp), ref.dequantize())
    # values outside the range clamp like torch's
    big = torch.tensor([100.0, -100.0, 0.0])
    assert torch.equal(quantize(big, 0.1, 3), torch.quantize_per_tensor(big, 0.1, 3, torch.qint8).int_repr())


def test_unsigned_quantize_matches_torch_quint8():
    x = torch.rand(3, 5) * 4 - 1
    scale, zp = qparams(x, qmin=0, qmax=255)
    q = quantize(x, scale, zp, qmin=0, qmax=255, dtype=torch.uint8)
    ref = torch.quantize_per_tensor(x, float(scale), int(zp), torch.quint8)
    assert torch.equal(q, ref.int_repr())


@pytest.mark.parametrize("symmetric", [False, True])
def test_per_channel_quantize_dequantize_match_torch(symmetric):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 5, generator=g) * torch.tensor([0.01, 0.5, 2.0, 8.0])[:, None]
    scale, zp = qparams(x, axis=0, symmetric=symmetric)
    q = quantize(x, scale, zp, axis=0)
    ref = torch.quantize_per_channel(x, scale.double(), zp, 0, torch.qint8)
    assert torch.equal(q, ref.int_repr())
    assert torch.allclose(dequantize(q, scale, zp, axis=0), ref.dequantize())
    # along axis 1 as well
    s1, z1 = qparams(x, axis=1)
    ref1 = torch.quantize_per_channel(x, s1.double(), z1, 1, torch.qint8)
    assert torch.equal(quantize(x, s1, z1, axis=1), ref1.int_repr())


def test_per_channel_beats_per_tensor_on_rows_of_different_scale():
    x = torch.randn(8, 64) * torch.logspace(-2, 1, 8)[:, None]
    per_tensor = quantization_error(x)
    per_channel = quantization_error(x, axis=0)
    assert per_channel["mse"] < 0.5 * per_tensor["mse"]
    assert per_channel["sqnr_db"] > per_tensor["sqnr_db"] + 3
    # the row of small weights is wiped out by one shared scale, but kept by its own
    s, z = qparams(x)
    row_tensor = (dequantize(quantize(x, s, z), s, z) - x)[0].abs().mean() / x[0].abs().mean()
    sc, zc = qparams(x, axis=0)
    row_channel = (dequantize(quantize(x, sc, zc, axis=0), sc, zc, axis=0) - x)[0].abs().mean() / x[0].abs().mean()
    assert row_tensor > 0.5 and row_channel < 0.02
    assert quantization_error(x, bits=4)["mse"] > per_tensor["mse"]


def test_roundtrip_error_is_at_most_half_a_step():
    x = torch.randn(100)
    s, z = qparams(x)
    err = (dequantize(quantize(x, s, z), s, z) - x).abs().max()
    assert err <= s / 2 + 1e-6


def test_fake_quantize_matches_torch_forward_and_gradient():
    x = (torch.randn(6, 5) * 3).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = fake_quantize(x, 0.02, 5)  # a small scale: many values clip
    y_ref = torch.fake_quantize_per_tensor_affine(x_ref, 0.02, 5, -128, 127)
    assert torch.allclose(y, y_ref, atol=1e-6)
    w = torch.randn(6, 5)
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    assert torch.equal(x.grad, x_ref.grad)
    # per channel
    xc = torch.randn(3, 4, requires_grad=True)
    s, z = qparams(xc, axis=0)
    ref = torch.fake_quantize_per_channel_affine(xc, s, z.to(torch.int32), 0, -128, 127)
    assert torch.allclose(fake_quantize(xc, s, z, axis=0), ref, atol=1e-6)


def test_quantize_errors_are_clear():
    with pytest.raises(TypeError, match="floating-point"):
        quantize(torch.ones(3, dtype=torch.long), 0.1, 0)
    with pytest.raises(ValueError, match="per-channel parameters have 2 values"):
        quantize(torch.ones(3, 4), torch.ones(2), torch.zeros(2, dtype=torch.long), axis=0)
    with pytest.raises(ValueError, match="pass axis="):
        quantize(torch.ones(3, 4), torch.ones(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        quantize(torch.ones(3, 4), torch.ones(3), torch.zeros(3, dtype=torch.long), axis=2)
    with pytest.raises(ValueError, match="scale must be positive"):
        quantize(torch.ones(3), 0.0, 0)
    with pytest.raises(ValueError, match="bits"):
        qrange(1)


# --------------------------------------------------------------------------- folding and QAT


def test_fold_batchnorm_keeps_the_function():
    torch.manual_seed(0)
    cnn = SmallCNN(width=6)
    cnn.train()
    for _ in range(3):  # give BN real running statistics
        cnn(torch.rand(16, 1, 8, 8))
    cnn.eval()
    folded = fold_batchnorm(cnn)
    x = torch.rand(5, 1, 8, 8)
    assert torch.allclose(folded(x), cnn(x), atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


def test_qat_layer_and_observer():
    fq = FakeQuantize(bits=8)
    with pytest.raises(RuntimeError, match="calibrate"):
        fq.eval()(torch.randn(3))
    fq.train()
    fq(torch.tensor([-1.0, 2.0]))
    assert float(fq.min_val) == -1.0 and float(fq.max_val) == 2.0
    fq(torch.tensor([-3.0, 2.0]))
    assert float(fq.min_val) == pytest.approx(-1.2)  # moving average with momentum 0.1
    layer = QATLayer(nn.Linear(5, 3), bits=8)
    x = torch.randn(4, 5)
    layer.train()
    y = layer(x)
    assert torch.allclose(y, layer.layer(x), atol=0.05)  # 8 bits: close to float
    y.sum().backward()
    assert layer.layer.weight.grad is not None and torch.isfinite(layer.layer.weight.grad).all()
    with pytest.raises(TypeError, match="wraps"):
        QATLayer(nn.ReLU())


def test_qat_trains_and_exports_small_int8_weights():
    torch.manual_seed(0)
    train, val = load_digits("train", limit=384), load_digits("val", limit=128)
    cnn = SmallCNN(width=8)
    Trainer(cnn, lr=3e-3, batch_size=64, progress=False, log=False).fit(train, epochs=2)
    cnn.eval()
    q = prepare_qat(cnn, bits=4)
    assert sum(isinstance(m, QATLayer) for m in q.modules()) == 3
    calibrate(q, [train[i][0].unsqueeze(0) for i in range(32)])
    t = Trainer(q, lr=1e-3, batch_size=64, progress=False, log=False)
    before = t.evaluate(val)["val_loss"]
    t.fit(train, epochs=2)
    after = t.evaluate(val)["val_loss"]
    assert after < before


def test_int8_export_is_about_four_times_smaller():
    import io

    cnn = SmallCNN(width=32).eval()
    q = calibrate(prepare_qat(cnn, bits=8), [torch.rand(8, 1, 8, 8)])
    sd = int8_state_dict(q)
    assert all(v.dtype == torch.int8 for k, v in sd.items() if k.endswith("weight_q"))
    assert {k for k in sd if k.endswith("weight_q")} == {"features.0.weight_q", "features.3.weight_q", "classifier.2.weight_q"}
    buf = io.BytesIO()
    torch.save(sd, buf)
    assert buf.getbuffer().nbytes < 0.35 * model_bytes(fold_batchnorm(cnn))
    with pytest.raises(ValueError, match="prepare_qat"):
        int8_state_dict(cnn)


# --------------------------------------------------------------------------- library paths


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()


@pytest.mark.parametrize("mode", ["dynamic", "weight_only"])
def test_torchao_quantization_is_close_and_smaller(mode):
    model = _mlp()
    x = torch.randn(16, 64)
    q = quantize_torchao(model, mode)
    assert type(q[0].weight).__name__ == "Int8Tensor"
    assert isinstance(model[0].weight, nn.Parameter)  # the original is untouched
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    assert model_bytes(q) < 0.5 * model_bytes(model)
    assert count_weights(q)[0] == count_weights(model)[0]


def test_legacy_dynamic_quantization_is_close_and_smaller():
    model = _mlp()
    x = torch.randn(16, 64)
    q = quantize_legacy(model)
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    assert model_bytes(q) < 0.5 * model_bytes(model)
    assert count_weights(q)[0] == count_weights(model)[0]


def test_library_quantization_rejects_masked_models_and_bad_modes():
    model = _mlp()
    prune_magnitude(model, 0.5)
    with pytest.raises(ValueError, match="make_permanent"):
        quantize_torchao(model)
    with pytest.raises(ValueError, match="make_permanent"):
        quantize_legacy(model)
    with pytest.raises(ValueError, match="mode"):
        quantize_torchao(_mlp(), "int4")
    info = cpu_int8_support()
    assert isinstance(info["vnni"], bool) and info["capability"]


def test_four_bit_codes_pack_two_per_byte():
    from tutorlib.compress import pack_int4

    q = torch.randint(-8, 8, (7, 5), dtype=torch.int8)
    packed = pack_int4(q)
    assert packed.dtype == torch.uint8 and packed.numel() == 18
    low, high = (packed & 15).to(torch.int16) - 8, (packed >> 4).to(torch.int16) - 8
    unpacked = torch.stack([low, high], 1).flatten()[:35].reshape(7, 5)
    assert torch.equal(unpacked.to(torch.int8), q)
    with pytest.raises(ValueError, match="4 bits"):
        pack_int4(torch.tensor([100], dtype=torch.int8))
    cnn = SmallCNN(width=32).eval()
    four = int8_state_dict(calibrate(prepare_qat(cnn, bits=4), [torch.rand(8, 1, 8, 8)]))
    eight = int8_state_dict(calibrate(prepare_qat(cnn, bits=8), [torch.rand(8, 1, 8, 8)]))
    assert "features.3.weight_q4" in four
    from tutorlib.compress import serialized_bytes

    assert serialized_bytes(four) < 0.7 * serialized_bytes(eight)
