"""DPO from scratch (`tutorlib.llm.preference`) checked against `trl`'s `DPOTrainer` on a tiny random Llama.

`trl` builds its own batch of 4 pairs and logs the loss and rewards of its first step; ours, computed on
that very batch with `sequence_logprobs` and `dpo_loss`, must agree. `trl` needs `datasets` 4.x and so an
older `transformers` than the course's, so `run.sh` installs it into an overlay environment (`.venv-trl`,
see `constraints-trl.txt`) and exports its interpreter as `TUTORLIB_TRL_PYTHON`: where `trl` is not
importable, the comparison runs in a subprocess of that interpreter. It is skipped only when neither exists
(and fails when `TUTORLIB_TRL_PYTHON` names a missing interpreter, so CI cannot skip it silently).
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
from pathlib import Path

import pytest
import torch

from tiny_llm import tiny_llm_folder
from tutorlib.llm.preference import (dpo_loss, dpo_train, pair_logprobs, preference_accuracy, preference_example,
                                     reference_logprobs, sequence_logprobs)

PAIRS = [("Capital of France?", "Paris.", "Rome, I think."), ("Two plus two?", "Four.", "Five."),
         ("Colour of the sky?", "Blue.", "Green, mostly."), ("Opposite of hot?", "Cold.", "Warm.")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_llm_folder(tmp_path_factory.mktemp("tiny-llama"))


def _models(folder):
    """A reference (the saved random Llama) and a policy that differs from it, so the rewards are not zero."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    policy = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    return policy, ref, AutoTokenizer.from_pretrained(folder)


ROOT = Path(__file__).resolve().parents[1]


def _trl_python() -> str | None:
    named = os.environ.get("TUTORLIB_TRL_PYTHON")
    if named:
        if not Path(named).is_file():
            pytest.fail(f"TUTORLIB_TRL_PYTHON={named} does not exist: run `bash run.sh install` to build .venv-trl")
        return named
    default = ROOT / ".venv-trl" / "bin" / "python"
    return str(default) if default.is_file() else None


def test_loss_and_rewards_match_trl_on_its_own_batch(folder, tmp_path):
    if importlib.util.find_spec("trl") is None:
        python = _trl_python()
        if python is None:
            pytest.skip("trl is not installed here and there is no .venv-trl: `bash run.sh install` builds it")
        test = f"{Path(__file__).relative_to(ROOT)}::test_loss_and_rewards_match_trl_on_its_own_batch"
        proc = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", test],
                              cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]
        return
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    policy, ref, tok = _models(folder)
    rows = [{"prompt": [{"role": "user", "content": p}], "chosen": [{"role": "assistant", "content": c}],
             "rejected": [{"role": "assistant", "content": r}]} for p, c, r in PAIRS]
    args = DPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, max_steps=1, logging_steps=1,
                     learning_rate=1e-3, beta=0.1, report_to="none", save_strategy="no", use_cpu=True,
                     disable_tqdm=True, seed=0, bf16=False)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        ours_policy = sequence_logprobs(policy, batch["input_ids"], batch["attention_mask"], labels)
        ours_ref = sequence_logprobs(ref, batch["input_ids"], batch["attention_mask"], labels)
    ours = dpo_loss(*ours_policy.chunk(2), *ours_ref.chunk(2), beta=0.1)
    trainer.train()
    logged = next(entry for entry in trainer.state.log_history if "rewards/chosen" in entry)
    assert abs(float(ours.loss) - 0.6931) > 1e-3  # the policy differs from the reference: a real comparison
    assert float(ours.loss) == pytest.approx(logged["loss"], abs=1e-5)
    assert float(ours.chosen_rewards.mean()) == pytest.approx(logged["rewards/chosen"], abs=1e-5)
    assert float(ours.rejected_rewards.mean()) == pytest.approx(logged["rewards/rejected"], abs=1e-5)
    margins = ours.chosen_rewards - ours.rejected_rewards
    assert float(margins.mean()) == pytest.approx(logged["rewards/margins"], abs=1e-5)

    # our pairs hold the same token ids as trl's; the labels are the answer up to its end-of-turn token
    data = trainer.train_dataset
    for i, (p, c, r) in enumerate(PAIRS):
        ex = preference_example(tok, p, c, r)
        row = data[i]
        for name in ("chosen", "rejected"):
            ids, lab = ex[name]["input_ids"], ex[name]["labels"]
            assert ids == row["prompt_ids"] + row[f"{name}_ids"]
            answer = [t for t, y in zip(ids, lab) if y != -100]
            assert answer == row[f"{name}_ids"][:len(answer)] and answer[-1] == tok.eos_token_id
            assert len(row[f"{name}_ids"]) - len(answer) <= 1  # trl also learns the newline after <|im_end|>


def test_reference_is_computed_once_and_dpo_learns_the_preference(folder):
    policy, _, tok = _models(folder)
    examples = [preference_example(tok, p, c, r, system="Be brief.") for p, c, r in PAIRS] * 2
    reference = reference_logprobs(policy, examples, batch_size=4)
    assert torch.allclose(reference, pair_logprobs(policy, examples, batch_size=3), atol=1e-4)  # nor does batching
    before = preference_accuracy(policy, examples, reference=reference, batch_size=4)
    assert before == 0.0  # policy = reference: no margin yet
    calls = []
    original = policy.forward

    def counting(*args, **kwargs):
        calls.append(torch.is_grad_enabled())
        return original(*args, **kwargs)

    policy.forward = counting
    history = dpo_train(policy, examples, epochs=4, lr=3e-3, batch_size=4, reference=reference, progress=False,
                        log=False)
    assert all(calls)  # every forward in training needed gradients: no reference forward pass inside the loop
    assert history.steps[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert history.steps[-1]["loss"] < 0.6 and history.steps[-1]["rewards/margins"] > 0
    assert preference_accuracy(policy, examples, reference=reference) == 1.0


def test_bad_pairs_and_shapes_get_clear_errors(folder):
    _, _, tok = _models(folder)
    with pytest.raises(ValueError, match="same"):
        preference_example(tok, "Q?", "A.", "A.")
    with pytest.raises(ValueError, match="rejected answer is empty"):
        preference_example(tok, "Q?", "A.", " ")
    with pytest.raises(ValueError, match="end with a user message"):
        preference_example(tok, [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}], "B", "C")
    with pytest.raises(ValueError, match="one shape"):
        dpo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="add a batch dimension"):
        sequence_logprobs(None, torch.zeros(3, dtype=torch.long), None, torch.zeros(3, dtype=torch.long))


def test_nll_weight_adds_the_chosen_answers_nll_per_token(folder):
    policy, _, tok = _models(folder)
    examples = [preference_example(tok, p, c, r, system="Be brief.") for p, c, r in PAIRS]
    reference = reference_logprobs(policy, examples, batch_size=4)
    n_tokens = sum(sum(y != -100 for y in ex["chosen"]["labels"][1:]) for ex in examples)
    expected = math.log(2) + 0.5 * float(-reference[:, 0].sum() / n_tokens)  # policy = reference: DPO gives ln 2
    history = dpo_train(policy, examples, epochs=1, lr=1e-3, batch_size=4, reference=reference, nll_weight=0.5,
                        progress=False, log=False)
    assert history.steps[0]["loss"] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="nll_weight"):
        dpo_train(policy, examples, nll_weight=-1.0, reference=reference, progress=False, log=False)
