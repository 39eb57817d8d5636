"""Lesson 11's newer exercise checks (lesson 12's are in test_llm_checks_12.py): right answers pass, stubs are not attempted, typical mistakes
fail with a hint, and the experiment checks recompute the measurement."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from tutorlib.finetune.causal_lm import SFTCollator
from tutorlib.grading.registry import run_check
from tutorlib.llm import char_tokenizer, greedy, review_summary_examples
from tutorlib.llm.sft import completion_loss, mask_prompt_labels
from mutants_table import own

# The learner's own copies: the library's own objects are flagged as "uses the library's implementation".
Collator = type("Collator", (SFTCollator,), {})
greedy, completion_loss = own(greedy), own(completion_loss)


def stub(*args, **kwargs):
    raise NotImplementedError("write your answer here")


def _until_eos(model, prompt, eos, n):
    new = greedy(model, torch.tensor([prompt]), n, eos_id=eos)[0, len(prompt):].tolist()
    return new[:new.index(eos)] if eos in new else new


RIGHT = {"ex11_2": ("pad_batch", lambda items, pad: Collator(pad)(items)),
         "ex11_3": ("completion_loss", completion_loss),
         "ex11_5": ("generate_until_eos", _until_eos)}


def _fails(ex, ns, *words):
    res = run_check(ex, ns)
    assert res.status == "fail", (ex, res)
    for w in words:
        assert w in res.message, (ex, res.message)


def test_reference_answers_pass_and_stubs_are_not_attempted():
    for ex, (name, fn) in RIGHT.items():
        assert run_check(ex, {name: fn}).status == "pass", ex
        assert run_check(ex, {name: stub}).status == "not_attempted", ex
        assert run_check(ex, {}).status == "fail", ex


def test_typical_mistakes_are_explained():
    def pad_labels_with_pad_id(items, pad):
        out = Collator(pad)(items)
        out["labels"] = out["labels"].masked_fill(out["attention_mask"] == 0, pad)
        return out
    _fails("ex11_2", {"pad_batch": pad_labels_with_pad_id}, "-100")
    unshifted = lambda lg, lab: F.cross_entropy(lg.reshape(-1, lg.shape[-1]), lab.reshape(-1), ignore_index=-100)  # noqa: E731
    _fails("ex11_3", {"completion_loss": unshifted}, "t + 1")
    with_eos = lambda m, p, e, n: (lambda new: new[:new.index(e) + 1] if e in new else new)(  # noqa: E731
        greedy(m, torch.tensor([p]), n, eos_id=e)[0, len(p):].tolist())
    _fails("ex11_5", {"generate_until_eos": with_eos}, "leave the EOS")
    _fails("ex11_5", {"generate_until_eos": lambda m, p, e, n: p + _until_eos(m, p, e, n)}, "only the new tokens")


def test_experiment_checks_recompute_the_measurement():
    tok = char_tokenizer()
    counted = total = 0
    for row in review_summary_examples("train", n=200):
        _, labels = mask_prompt_labels(tok(row["prompt"], add_special_tokens=False)["input_ids"],
                                       tok(row["completion"], add_special_tokens=False)["input_ids"], tok.eos_token_id)
        counted += sum(lab != -100 for lab in labels)
        total += len(labels)
    assert run_check("ex11_4", {"loss_share": counted / total}).status == "pass"
    _fails("ex11_4", {"loss_share": 100 * counted / total}, "fraction")
    _fails("ex11_4", {"loss_share": 0.5})

