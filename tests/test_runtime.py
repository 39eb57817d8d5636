"""tutorlib.runtime: device choice, seeding, smoke budget, doctor."""

import os

import pytest
import torch

from tutorlib import runtime as rt


def test_device_default_is_cpu_here(monkeypatch):
    monkeypatch.delenv("TUTORLIB_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if rt._mps_available() else "cpu")
    assert rt.get_device().type == expected


def test_env_override_and_bad_values(monkeypatch):
    monkeypatch.setenv("TUTORLIB_DEVICE", "cpu")
    assert rt.get_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        rt.get_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            rt.get_device("cuda")


def test_seed_everything_repeats_all_generators():
    import random

    import numpy as np

    rt.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3))
    rt.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    with pytest.raises(TypeError):
        rt.seed_everything("1")  # type: ignore[arg-type]


def test_budget_follows_smoke_env(monkeypatch):
    monkeypatch.setenv("TUTORLIB_SMOKE", "1")
    assert rt.is_smoke() and rt.budget(full=1000, smoke=10) == 10
    monkeypatch.setenv("TUTORLIB_SMOKE", "0")
    assert not rt.is_smoke() and rt.budget(full=1000, smoke=10) == 1000


def test_autocast_dtypes_cpu():
    assert rt.autocast_dtypes(torch.device("cpu")) == [torch.bfloat16]


def test_setup_prints_device(capsys):
    dev = rt.setup(seed=1)
    out = capsys.readouterr().out
    assert str(dev) in out and "mode=" in out


def test_doctor_reports_every_line():
    report = rt.doctor(quiet=True)
    names = [c.name for c in report.checks]
    for needed in ("python", "torch", "transformers", "device", "MiniLM weights", "review data"):
        assert needed in names
    assert report.ok, str(report)
    assert all(("OK" in c.line()) or ("fix:" in c.line()) for c in report.checks)


def test_deterministic_switch_roundtrip():
    rt.set_deterministic(True)
    assert torch.are_deterministic_algorithms_enabled()
    rt.set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()
