"""`tutorlib finetune` / `tutorlib predict` end to end on small files the tests write.

Most runs use a tiny BERT saved to a local folder (``--model PATH``) so they take seconds; one run uses
the bundled MiniLM (the default) to check the real path. The subcommands are called through a small
argparse parser built with ``add_finetune_parser``/``add_predict_parser``, as ``tutorlib.cli`` does.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys

import pytest

from pathlib import Path

from tutorlib.finetune.cli import add_finetune_parser, add_predict_parser

ROOT = Path(__file__).resolve().parents[1]

POS = ["Wonderful stay, the staff were kind and the room spotless.", "The battery lasts two days, excellent.",
       "A gripping book; I read it in one night.", "Delicious food and quick service.",
       "Great value, would fly with them again.", "The update made everything faster, love it."]
NEG = ["The room smelled of smoke and the shower was cold.", "It stopped charging after a week.",
       "Dull characters and a predictable plot.", "Cold soup and a rude waiter.",
       "Our flight was delayed six hours with no explanation.", "The app crashes every time I open it."]


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tutorlib")
    sub = parser.add_subparsers(dest="command", required=True)
    add_finetune_parser(sub)
    add_predict_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer BERT with MiniLM's tokenizer, saved like any model folder."""
    import torch
    from transformers import BertConfig, BertModel

    from tutorlib.models import minilm_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64)).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_path() / name, folder / name)
    return folder


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "review", "sentiment"])
        for i, (p, n) in enumerate(zip(POS, NEG)):
            w.writerow([2 * i, p, "positive"])
            w.writerow([2 * i + 1, n, "negative"])
    return path


def test_finetune_resume_and_predict_with_a_local_model(tiny_model, data, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["finetune", "--data", str(data), "--text-col", "review", "--label-col", "sentiment", "--model",
            str(tiny_model), "--out", str(out), "--batch-size", "4", "--quiet", "--lr", "1e-2"]
    assert cli(base + ["--epochs", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == ["negative", "positive"] and metrics["method"] == "lora"
    assert metrics["train_size"] + metrics["val_size"] == 12 and metrics["val_size"] == 2
    assert len(metrics["history"]["epochs"]) == 1 and 0 <= metrics["val_accuracy"] <= 1
    assert metrics["trainable_percent"] < 100 and set(metrics["per_class"]) == {"negative", "positive"}
    assert json.loads((out / "labels.json").read_text())["label_to_id"] == {"negative": 0, "positive": 1}
    assert (out / "adapter_model.safetensors").stat().st_size < 100_000
    assert (out / "checkpoints" / "latest").exists()
    # a second run into the same folder must not silently overwrite it
    assert cli(base + ["--epochs", "1"]) == 2
    assert "add --resume" in capsys.readouterr().err
    # resume: continue to epoch 2 from the checkpoint, keeping epoch 1's history
    assert cli(base + ["--epochs", "2", "--resume"]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    hist = resumed["history"]["epochs"]
    assert [e["epoch"] for e in hist] == [0, 1] and hist[0] == metrics["history"]["epochs"][0]
    # resuming with different settings is refused
    assert cli(base + ["--epochs", "3", "--resume", "--r", "4"]) == 2
    assert "settings changed" in capsys.readouterr().err
    capsys.readouterr()
    # predict on texts
    assert cli(["predict", "--model", str(out), "Spotless room, lovely staff.", "It broke in a day."]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        label, prob, probs, text = line.split("\t")
        assert label in ("negative", "positive") and 0.5 <= float(prob) <= 1 and "negative" in probs
    assert cli(["predict", "--model", str(out), "--json", "fine"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert abs(sum(pred["probabilities"].values()) - 1) < 1e-5
    # predict on a file: CSV out, accuracy against the file's labels
    preds = tmp_path / "preds.csv"
    assert cli(["predict", "--model", str(out), "--data", str(data), "--out", str(preds)]) == 0
    err = capsys.readouterr().err
    assert "12 rows classified" in err and "accuracy against the file's labels" in err
    rows = list(csv.DictReader(preds.open()))
    assert len(rows) == 12 and set(rows[0]) == {"line", "review", "predicted", "probability", "p_negative", "p_positive"}
    assert rows[0]["line"] == "2"


@pytest.mark.parametrize("method", ["head", "ia3", "prefix", "full"])
def test_other_methods_write_loadable_artefacts(method, tiny_model, tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    rows = [{"text": t, "label": 1} for t in POS] + [{"text": t, "label": 0} for t in NEG]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / method
    assert cli(["finetune", "--data", str(path), "--model", str(tiny_model), "--method", method, "--epochs", "1",
                "--out", str(out), "--quiet", "--batch-size", "8"]) == 0
    assert json.loads((out / "labels.json").read_text())["labels"] == ["0", "1"]
    capsys.readouterr()
    assert cli(["predict", "--model", str(out), "--json", "Lovely.", "Awful."]) == 0
    preds = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [sorted(p["probabilities"]) for p in preds] == [["0", "1"]] * 2


def test_bundled_minilm_default_and_validation_file(data, tmp_path, capsys):
    val = tmp_path / "val.tsv"
    val.write_text("review\tsentiment\nA superb hotel.\tpositive\nA terrible airline.\tnegative\n")
    out = tmp_path / "minilm"
    assert cli(["finetune", "--data", str(data), "--val-data", str(val), "--text-col", "review", "--label-col",
                "sentiment", "--epochs", "1", "--out", str(out), "--quiet", "--batch-size", "12"]) == 0
    captured = capsys.readouterr().out
    assert "12 train / 2 validation examples" in captured and "method lora" in captured
    meta = json.loads((out / "tutorlib_model.json").read_text())
    assert meta["base"] is None and meta["labels"] == ["negative", "positive"]  # None = the bundled MiniLM
    assert cli(["predict", "--model", str(out), "A wonderful, friendly place."]) == 0


@pytest.mark.parametrize("content,message", [
    ("review,stars\ngood,5\nbad,1\n", "no text column 'text'"),
    ("text,label\ngood,pos\nbad,pos\n", "at least two classes"),
    ("text,label\ngood,pos\n,neg\n", "line 3: column 'text' is empty"),
])
def test_bad_files_fail_fast_with_one_line(tmp_path, capsys, content, message):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    assert cli(["finetune", "--data", str(f), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_unreadable_encoding_and_usage_errors(tmp_path, data, capsys):
    f = tmp_path / "latin.csv"
    f.write_bytes("text,label\nbon,pos\ncaf\xe9 froid,neg\n".encode("latin-1"))
    assert cli(["finetune", "--data", str(f), "--quiet"]) == 2
    assert "line 3" in capsys.readouterr().err
    assert cli(["finetune", "--data", str(data), "--text-col", "review", "--label-col", "sentiment", "--model",
                "someone/some-model", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "offline" in err and "bundled MiniLM" in err
    assert cli(["finetune", "--data", str(data), "--resume", "--out", str(tmp_path / "none"), "--text-col", "review",
                "--label-col", "sentiment"]) == 2
    assert "run without --resume first" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # a usage error, reported by argparse before anything runs
        cli(["finetune", "--data", str(data), "--epochs", "0"])
    assert usage.value.code == 2
    assert "--epochs: must be a whole number of at least 1, got 0" in capsys.readouterr().err
    assert cli(["predict", "--model", str(tmp_path)]) == 2
    assert "nothing to classify" in capsys.readouterr().err
    assert cli(["predict", "--model", str(tmp_path), "hello"]) == 2
    assert "tutorlib_model.json" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "tutorlib.finetune", "finetune", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--label-col" in proc.stdout and "--resume" in proc.stdout


@pytest.mark.slow
def test_finetune_under_torchrun_prints_and_writes_once_and_splits_the_data(tmp_path, data, tiny_model):
    import os

    out = tmp_path / "ddp-run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tutorlib",
           "finetune", "--data", str(data), "--text-col", "review", "--label-col", "sentiment", "--model",
           str(tiny_model), "--method", "head", "--epochs", "1", "--batch-size", "4", "--out", str(out), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1", TUTORLIB_DEVICE="cpu", PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("tutorlib finetune:") == 1 and proc.stdout.count("done in") == 1, proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2
    half = metrics["train_size"] / 2
    assert all(abs(n - half) <= 2 for n in metrics["examples_per_process"]), metrics["examples_per_process"]
    assert (out / "labels.json").exists() and not list(tmp_path.glob("**/*.tmp"))


def test_a_normal_run_prints_no_library_noise(tmp_path, data, tiny_model):
    import os

    cmd = [sys.executable, "-m", "tutorlib", "finetune", "--data", str(data), "--text-col", "review", "--label-col",
           "sentiment", "--model", str(tiny_model), "--method", "lora", "--epochs", "1", "--out", str(tmp_path / "o"),
           "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for noise in ("Failed to load", "_pytree", "Loading weights"):
        assert noise not in proc.stderr, proc.stderr
