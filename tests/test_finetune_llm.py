"""`tutorlib finetune --task causal-lm / preference` end to end on a tiny random Llama (never the network),
then `tutorlib generate --model RUN_DIR` on the result; bad files get one clear line each."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tiny_llm import tiny_llm_folder
from tutorlib.cli import main

QA = [("Capital of France?", "Paris."), ("Two plus two?", "Four."), ("Colour of the sky?", "Blue."),
      ("Opposite of hot?", "Cold."), ("Capital of Italy?", "Rome."), ("Three plus one?", "Four."),
      ("Colour of grass?", "Green."), ("Opposite of up?", "Down.")]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return tiny_llm_folder(tmp_path_factory.mktemp("tiny-llama"))


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_causal_lm_on_pairs_and_chats_then_generate_with_the_adapter(llama, tmp_path, capsys):
    rows = [{"prompt": p, "completion": c} for p, c in QA] * 2
    rows += [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": c},
                           {"role": "user", "content": "Sure?"}, {"role": "assistant", "content": "Yes."}]}
             for p, c in QA]
    data = _write(tmp_path / "sft.jsonl", rows)
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, "finetune", "--task", "causal-lm", "--data", data, "--model", llama, "--out", out,
                             "--epochs", 2, "--lr", 1e-2, "--quiet", "--system", "Be brief.")
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_size"] + metrics["val_size"] == 24 and metrics["val_size"] == 5  # 20 %, small
    assert metrics["r"] == 16 and metrics["lora_target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert metrics["val_loss"] < metrics["untuned_val_loss"]  # better than the untuned model
    assert metrics["tokens_per_s"] > 0 and metrics["trained_tokens"] == 2 * metrics["total_tokens"]
    assert all("tokens_per_s" in s for s in metrics["history"]["steps"])
    assert "next-token accuracy" in stdout and "tutorlib generate --model" in stdout
    assert (out / "adapter_model.safetensors").exists()
    assert json.loads((out / "tutorlib_model.json").read_text())["task"] == "causal-lm"
    code, answer, err = _run(capsys, "generate", "--model", out, "--max-new-tokens", 4, "Capital of France?")
    assert code == 0, err
    # the adapter is used: the tuned model answers differently from its base
    code, base_answer, err = _run(capsys, "generate", "--model", llama, "--max-new-tokens", 4, "Capital of France?")
    assert code == 0 and answer != base_answer


def test_preference_after_sft_continues_the_adapter_and_prefers_the_chosen(llama, tmp_path, capsys):
    sft = _write(tmp_path / "sft.jsonl", [{"prompt": p, "completion": c} for p, c in QA])
    assert _run(capsys, "finetune", "--task", "causal-lm", "--data", sft, "--model", llama, "--out",
                tmp_path / "sft", "--quiet", "--lr", 1e-2)[0] == 0
    pairs = _write(tmp_path / "pairs.jsonl",
                   [{"prompt": p, "chosen": c, "rejected": "I will not say."} for p, c in QA] * 3)
    out = tmp_path / "dpo"
    code, stdout, err = _run(capsys, "finetune", "--task", "preference", "--data", pairs, "--model", tmp_path / "sft",
                             "--out", out, "--epochs", 3, "--lr", 1e-2, "--quiet")
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["val_dpo_loss"] < m["val_dpo_loss_before"] and m["val_reward_accuracy"] == 1.0
    assert m["history"]["steps"][0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # the reference is the SFT model
    assert "rewards/margins" in m["history"]["steps"][-1]
    meta = json.loads((out / "tutorlib_model.json").read_text())
    assert meta["base"] == str(llama) and meta["trained_with"] == "preference"  # one adapter on the original base
    code, _, err = _run(capsys, "generate", "--model", out, "--max-new-tokens", 3, "Two plus two?")
    assert code == 0, err


@pytest.mark.parametrize("task, rows, message", [
    ("causal-lm", [{"prompt": "Q"}], "line 1 has no 'completion' key"),
    ("causal-lm", [{"prompt": "Q", "completion": " "}], "line 1: 'completion' is empty"),
    ("causal-lm", [{"prompt": "Q", "completion": "A"}, {"messages": [{"role": "user", "content": "Hi"}]}],
     "line 2: the chat has no assistant turn"),
    ("causal-lm", [{"messages": [{"role": "robot", "content": "Hi"}]}], "line 1: message 1 has role 'robot'"),
    ("causal-lm", ["{not json"], "line 1"),
    ("preference", [{"prompt": "Q", "chosen": "A"}], "line 1 has no 'rejected' key"),
    ("preference", [{"prompt": "Q", "chosen": "A", "rejected": "A"}], "line 1: 'chosen' and 'rejected' are the same"),
    ("preference", [{"prompt": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
                     "chosen": "B", "rejected": "C"}], "line 1: the prompt's last message is the assistant's"),
])
def test_bad_files_fail_fast_with_one_clear_line(task, rows, message, llama, tmp_path, capsys):
    data = _write(tmp_path / "bad.jsonl", rows)
    code, _, err = _run(capsys, "finetune", "--task", task, "--data", data, "--model", llama, "--out", tmp_path / "o",
                        "--quiet")
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_over_long_examples_are_cut_and_counted(llama, tmp_path, capsys):
    rows = [{"prompt": p, "completion": c} for p, c in QA]
    rows[0]["completion"] = "A very long answer indeed. " * 20
    rows[1]["prompt"] = "A very long question indeed. " * 20
    data = _write(tmp_path / "sft.jsonl", rows)
    code, stdout, err = _run(capsys, "finetune", "--task", "causal-lm", "--data", data, "--model", llama, "--out",
                             tmp_path / "o", "--max-length", 120, "--quiet", "--val-data", data)
    assert code == 0, err
    assert "1 of 8 training examples were longer than --max-length 120 tokens and were cut" in stdout
    assert "1 of 8 training examples were left out: their answer starts after --max-length 120" in stdout
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["train_size"] == 7 and m["cut"]["train"] == {"cut": 1, "dropped": 1}


def test_resume_refuses_changed_settings_and_usage_errors_are_fast(llama, tmp_path, capsys):
    data = _write(tmp_path / "sft.jsonl", [{"prompt": p, "completion": c} for p, c in QA])
    base = ["finetune", "--task", "causal-lm", "--data", data, "--model", llama, "--out", tmp_path / "o", "--quiet"]
    assert _run(capsys, *base)[0] == 0
    code, _, err = _run(capsys, *base, "--resume", "--r", 4)
    assert code == 2 and "settings changed" in err and "r: 16 then, 4 now" in err
    code, _, err = _run(capsys, *base, "--method", "ia3")
    assert code == 2 and "supports --method lora only" in err
    proc = subprocess.run([sys.executable, "-m", "tutorlib", "finetune", "--task", "preference", "--data", str(data),
                           "--beta", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--beta" in proc.stderr
