"""`tutorlib generate` end to end on tiny random Llamas saved to folders (never the bundled model, never the network)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_llm import EOS_ID, tiny_llm_folder
from tutorlib.cli import main

LETTER = 69  # a byte token ("B" in the byte-level alphabet), never an end-of-sequence token


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("llms")
    return {"random": tiny_llm_folder(root / "random"),
            "stops": tiny_llm_folder(root / "stops", favourite=EOS_ID),
            "talks": tiny_llm_folder(root / "talks", favourite=LETTER)}


def _run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_prompt_is_answered_with_the_chat_template(models, capsys):
    code, out, err = _run(capsys, "generate", "--model", models["talks"], "--max-new-tokens", 5, "Hello there")
    assert code == 0, err
    from transformers import AutoTokenizer

    letter = AutoTokenizer.from_pretrained(models["talks"]).decode([LETTER])
    assert out == letter * 5 + "\n"


def test_eos_stops_the_answer(models, capsys):
    code, out, err = _run(capsys, "generate", "--model", models["stops"], "--max-new-tokens", 50, "Hi")
    assert code == 0, err
    assert out.strip() == ""


def test_data_csv_is_answered_in_batches_like_one_by_one(models, capsys, tmp_path):
    data = tmp_path / "q.csv"
    data.write_text("question,id\nWhat is two plus two?,1\nName a colour,2\n\"Say, in one word: hi\",3\n")
    code, out, err = _run(capsys, "generate", "--model", models["random"], "--data", data, "--prompt-col", "question",
                          "--batch-size", 2, "--max-new-tokens", 6)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["line"] for r in rows] == ["2", "3", "4"]
    assert rows[2]["prompt"] == "Say, in one word: hi"
    assert all(r["finish_reason"] in ("eos", "length") for r in rows)
    assert "3 prompts answered" in err
    # left padding: batched greedy answers are the answers each prompt gets alone
    code, single, _ = _run(capsys, "generate", "--model", models["random"], "--data", data, "--prompt-col", "question",
                           "--batch-size", 1, "--max-new-tokens", 6)
    assert code == 0 and single == out


def test_data_jsonl_with_messages_and_jsonl_output(models, capsys, tmp_path):
    data = tmp_path / "chats.jsonl"
    lines = [{"prompt": "Hello"},
             {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}]}]
    data.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    code, out, err = _run(capsys, "generate", "--model", models["stops"], "--data", data, "--format", "jsonl")
    assert code == 0, err
    objs = [json.loads(x) for x in out.splitlines()]
    assert objs[0]["prompt"] == "Hello" and objs[1]["messages"][1]["content"] == "Why?"
    assert all(o["answer"] == "" and o["new_tokens"] == 0 and o["finish_reason"] == "eos" for o in objs)
    code, out, err = _run(capsys, "generate", "--model", models["talks"], "--data", data, "--format", "jsonl")
    assert code == 0, err
    assert all(json.loads(x)["new_tokens"] == 64 and json.loads(x)["finish_reason"] == "length" for x in out.splitlines())


def test_chat_keeps_the_history(models, capsys, monkeypatch):
    from tutorlib.finetune import generate as gen_mod

    seen = []
    real = gen_mod.Generator.stream

    def spy(self, prompt, **kw):
        seen.append([dict(m) for m in prompt])
        return real(self, prompt, **kw)

    monkeypatch.setattr(gen_mod.Generator, "stream", spy)
    monkeypatch.setattr("sys.stdin", io.StringIO("first question\nsecond question\n\nnever read\n"))
    code, out, err = _run(capsys, "generate", "--model", models["talks"], "--chat", "--max-new-tokens", 3,
                          "--system", "Be kind.")
    assert code == 0, err
    assert len(seen) == 2
    assert [m["role"] for m in seen[1]] == ["system", "user", "assistant", "user"]
    assert seen[1][0]["content"] == "Be kind." and seen[1][3]["content"] == "second question"
    assert len(out.splitlines()) == 2


def test_sampling_is_reproducible_with_a_seed(models, capsys):
    argv = ["generate", "--model", models["random"], "--max-new-tokens", 8, "--temperature", 1.5, "--top-p", 0.9,
            "Tell me something"]
    first = _run(capsys, *argv, "--seed", 1)
    again = _run(capsys, *argv, "--seed", 1)
    assert first[0] == 0 and first == again, first[2]
    greedy = _run(capsys, "generate", "--model", models["random"], "--max-new-tokens", 8, "Tell me something")
    others = {_run(capsys, *argv, "--seed", s)[1] for s in range(2, 6)}
    assert len(others | {first[1]}) > 1, "different seeds should sample different answers"
    assert greedy[0] == 0


def test_raw_skips_the_template(models, capsys, monkeypatch):
    from tutorlib.finetune.generate import Generator

    gen = Generator(models["random"], device="cpu", raw=True)
    assert gen.encode("ab") == gen.tokenizer("ab")["input_ids"]
    chat = Generator(models["random"], device="cpu")
    assert len(chat.encode("ab")) > len(gen.encode("ab"))


@pytest.mark.parametrize("content, match", [
    ("prompt\n\n", "no rows"),
    ("text\nhello\n", "no prompt column 'prompt'"),
    ("prompt,id\n,1\n", "line 2: the prompt is empty"),
])
def test_bad_csv_files_give_one_clear_line(models, capsys, tmp_path, content, match):
    data = tmp_path / "bad.csv"
    data.write_text(content)
    code, out, err = _run(capsys, "generate", "--model", models["random"], "--data", data)
    assert code == 2 and out == ""
    assert match in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("line, match", [
    ('{"prompt": "a"}\n{"prompt": 3}', "line 2: 'prompt' is a int"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}', "last message is the assistant"),
    ('{"messages": [{"role": "robot", "content": "q"}]}', "role 'robot'"),
    ('{"question": "q"}', "no 'prompt' key"),
    ('not json', "line 1 is not valid JSON"),
])
def test_bad_jsonl_files_give_one_clear_line(models, capsys, tmp_path, line, match):
    data = tmp_path / "bad.jsonl"
    data.write_text(line + "\n")
    code, out, err = _run(capsys, "generate", "--model", models["random"], "--data", data)
    assert code == 2 and match in err, err


def test_missing_file_and_mode_errors(models, capsys, tmp_path):
    code, _, err = _run(capsys, "generate", "--model", models["random"], "--data", tmp_path / "nope.csv")
    assert code == 2 and "does not exist" in err
    code, _, err = _run(capsys, "generate", "--model", models["random"])
    assert code == 2 and "exactly one" in err
    code, _, err = _run(capsys, "generate", "--model", models["random"], "--chat", "--raw")
    assert code == 2 and "drop --raw" in err
    code, _, err = _run(capsys, "generate", "--model", "smollm3", "hi")
    assert code == 2 and "smollm2" in err


def test_generate_on_a_classifier_points_to_predict(capsys, tmp_path):
    clf = tmp_path / "clf"
    clf.mkdir()
    (clf / "tutorlib_model.json").write_text(json.dumps({"num_labels": 2, "method": {"method": "head"}}))
    code, out, err = _run(capsys, "generate", "--model", clf, "hello")
    assert code == 2 and out == ""
    assert "tutorlib predict --model" in err and len(err.strip().splitlines()) == 1


def test_predict_on_a_causal_lm_points_to_generate(models, capsys):
    code, out, err = _run(capsys, "predict", "--model", models["random"], "some text")
    assert code == 2 and "tutorlib generate --model" in err and len(err.strip().splitlines()) == 1
    code, out, err = _run(capsys, "predict", "--model", "smollm2", "some text")
    assert code == 2 and "tutorlib generate --model smollm2" in err


def test_adapter_run_folder_loads_its_base_and_adapter(models, capsys, tmp_path):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    from tutorlib.models import load_llm

    base = AutoModelForCausalLM.from_pretrained(models["random"])
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type=TaskType.CAUSAL_LM))
    run = tmp_path / "run"
    lora.save_pretrained(run)
    (run / "tutorlib_model.json").write_text(json.dumps({"task": "causal-lm", "method": "lora",
                                                         "base": str(models["random"])}))
    model, tok = load_llm(run, device="cpu")
    assert type(model).__name__ == "PeftModelForCausalLM" and not model.training
    code, out, err = _run(capsys, "generate", "--model", run, "--max-new-tokens", 3, "hi")
    assert code == 0, err


def test_usage_error_in_a_subprocess_is_fast_and_clean(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tutorlib", "generate", "--data", str(tmp_path / "missing.csv")],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "missing.csv does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
