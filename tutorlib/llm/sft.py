"""Supervised fine-tuning data for causal LMs: the loss on the completion only.

The model sees ``prompt + completion + EOS``; the prompt positions get the label :data:`IGNORE_INDEX`,
which ``transformers``' (and ``F.cross_entropy``'s) loss ignores, so the model learns to write the
answer, not the question. ``tutorlib finetune --task causal-lm`` builds its examples with
:func:`mask_prompt_labels`.

>>> mask_prompt_labels([5, 6], [7, 8], eos_id=0)
([5, 6, 7, 8, 0], [-100, -100, 7, 8, 0])
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Sequence

__all__ = ["IGNORE_INDEX", "LLAMA_TARGETS", "mask_prompt_labels", "completion_loss", "chat_example",
           "prompt_completion_example", "length_batches", "collate", "BatchedExamples", "TokenMeter", "add_lora",
           "lora_sft", "evaluate_sft"]

#: The label ``transformers`` (and ``F.cross_entropy``) ignore.
IGNORE_INDEX = -100
#: LoRA targets that suit a Llama (SmolLM2 is one): the attention projections.
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def mask_prompt_labels(prompt_ids: Sequence[int], completion_ids: Sequence[int], eos_id: int | None = None,
                       max_length: int | None = None) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for one example: labels equal the ids on the completion (+EOS), -100 on the prompt.

    ``max_length`` truncates the prompt from the left first (the completion is what is learned),
    then the completion from the right.

    >>> mask_prompt_labels([1, 2, 3], [4], max_length=3)
    ([2, 3, 4], [-100, -100, 4])
    """
    prompt, completion = list(prompt_ids), list(completion_ids) + ([eos_id] if eos_id is not None else [])
    if not completion:
        raise ValueError("the completion has no tokens: nothing to learn")
    if max_length is not None:
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        completion = completion[:max_length - 1] if len(completion) >= max_length else completion
        keep = max_length - len(completion)
        prompt = prompt[-keep:] if keep > 0 else []
    return prompt + completion, [IGNORE_INDEX] * len(prompt) + completion


def completion_loss(logits: "torch.Tensor", labels: "torch.Tensor") -> "torch.Tensor":
    """Mean next-token cross-entropy over the labelled positions: what a causal LM's ``loss`` is with these labels.

    Position ``t`` predicts ``labels[:, t + 1]`` (the shift a ``transformers`` causal LM applies itself);
    positions whose label is :data:`IGNORE_INDEX` (the prompt, padding) are left out of the mean.

    >>> import torch
    >>> logits = torch.zeros(1, 4, 10)                   # uniform over 10 tokens
    >>> round(float(completion_loss(logits, torch.tensor([[-100, -100, 3, 0]]))), 4)   # = ln 10
    2.3026
    """
    import torch
    from torch.nn import functional as F

    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"expected logits (B, T, V) and labels (B, T), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if not bool((labels[:, 1:] != IGNORE_INDEX).any()):
        raise ValueError("no position is labelled: every label after the first is -100, so there is nothing to learn")
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1).to(torch.long),
                           ignore_index=IGNORE_INDEX)


# ---------------------------------------------------------------------------------------------- chat examples
def _render_ids(tokenizer: Any, messages: Sequence[dict], add_generation_prompt: bool = False) -> list[int]:
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _check_chat(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError('messages must be a non-empty list like [{"role": "user", "content": "..."}, '
                         '{"role": "assistant", "content": "..."}]')
    out = []
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"message {i} must be a dict with string 'role' and 'content', got {m!r}")
        if m["role"] not in ("system", "user", "assistant"):
            raise ValueError(f"message {i} has role {m['role']!r}: use system, user or assistant")
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError("the chat has no assistant turn: there is nothing to learn (add an assistant message)")
    if any(m["role"] == "assistant" and not m["content"].strip() for m in out):
        raise ValueError("an assistant turn is empty: there is nothing to learn (fill it in or remove it)")
    return out


def chat_example(tokenizer: Any, messages: Sequence[dict[str, str]], *, system: str | None = None,
                 max_length: int | None = None) -> dict[str, Any]:
    """Token ids and labels of one chat, through the tokenizer's chat template: labels are -100 except on
    the assistant turns (their text and end-of-turn token), so the loss teaches the answers only.

    ``system`` adds a system message when the chat has none (SmolLM2's template otherwise inserts a
    ~20-token default one). ``max_length`` cuts the end of a longer chat; ``"cut"`` says how many tokens
    went (an example whose answers were cut away entirely raises ``ValueError``).

    >>> from transformers import AutoTokenizer
    >>> from tutorlib.models import llm_path
    >>> tok = AutoTokenizer.from_pretrained(llm_path("smollm2"))
    >>> ex = chat_example(tok, [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], system="Be brief.")
    >>> tok.decode([t for t, y in zip(ex["input_ids"], ex["labels"]) if y != -100])
    '4<|im_end|>'
    >>> ex["cut"]
    0
    """
    messages = _check_chat(messages)
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the tokenizer has no chat template: use prompt/completion examples "
                         "(prompt_completion_example) or set tokenizer.chat_template")
    if system is not None and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system}] + messages
    ids = _render_ids(tokenizer, messages)
    labels = [IGNORE_INDEX] * len(ids)
    end_ids = {i for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"),
                           tokenizer.convert_tokens_to_ids("<|eot_id|>")) if isinstance(i, int) and i >= 0
               and i != tokenizer.unk_token_id}
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(_render_ids(tokenizer, messages[:k], add_generation_prompt=True))
        stop = len(_render_ids(tokenizer, messages[:k + 1]))
        if ids[:stop] != _render_ids(tokenizer, messages[:k + 1]):
            raise ValueError("the chat template renders a conversation's start differently once more turns follow: "
                             "cannot tell which tokens are the assistant's")
        span = ids[start:stop]
        ends = [j for j, t in enumerate(span) if t in end_ids]
        stop = start + ends[-1] + 1 if ends else stop  # up to the end-of-turn token (not the newline after it)
        labels[start:stop] = ids[start:stop]
    cut = 0
    if max_length is not None:
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        cut = max(0, len(ids) - max_length)
        ids, labels = ids[:max_length], labels[:max_length]
        if all(y == IGNORE_INDEX for y in labels):
            raise ValueError(f"the chat is {len(ids) + cut} tokens long and its first answer starts after max_length="
                             f"{max_length}: raise max_length or shorten the prompt")
    return {"input_ids": ids, "labels": labels, "cut": cut}


def prompt_completion_example(tokenizer: Any, prompt: str, completion: str, *, system: str | None = None,
                              max_length: int | None = None) -> dict[str, Any]:
    """One prompt/completion pair as ``{"input_ids", "labels", "cut"}``: through the chat template (user
    prompt, assistant completion) when the tokenizer has one, else ``prompt + completion + EOS`` with
    :func:`mask_prompt_labels`.

    >>> from transformers import AutoTokenizer
    >>> from tutorlib.models import llm_path
    >>> tok = AutoTokenizer.from_pretrained(llm_path("smollm2"))
    >>> ex = prompt_completion_example(tok, "Capital of France?", "Paris", system="Be brief.")
    >>> tok.decode([t for t, y in zip(ex["input_ids"], ex["labels"]) if y != -100])
    'Paris<|im_end|>'
    """
    if not completion.strip():
        raise ValueError("the completion is empty: there is nothing to learn")
    if getattr(tokenizer, "chat_template", None) is not None:
        return chat_example(tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
                            system=system, max_length=max_length)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    full = len(p_ids) + len(c_ids) + (tokenizer.eos_token_id is not None)
    ids, labels = mask_prompt_labels(p_ids, c_ids, tokenizer.eos_token_id, max_length)
    return {"input_ids": ids, "labels": labels, "cut": full - len(ids)}


# ---------------------------------------------------------------------------------------------- batching
def length_batches(lengths: Sequence[int], batch_size: int, *, seed: int = 0,
                   max_tokens: int | None = None) -> list[list[int]]:
    """Batches of example indices with similar lengths, in a shuffled order: padding to the longest of a
    batch then wastes little (bucketing). Ties are broken at random (``seed``), so equal-length examples
    do not always meet; ``max_tokens`` also caps ``batch rows × longest length``.

    >>> length_batches([5, 1, 4, 2, 3, 6], 2, seed=0)
    [[1, 3], [0, 5], [4, 2]]
    >>> sorted(sorted(b) for b in length_batches([100, 100, 10, 10], 4, max_tokens=150))
    [[0], [1], [2, 3]]
    """
    import random

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    rng = random.Random(seed)
    keys = [(int(n), rng.random(), i) for i, n in enumerate(lengths)]
    order = [i for _, _, i in sorted(keys)]
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max([lengths[j] for j in current] + [lengths[i]])
        if current and (len(current) == batch_size or (max_tokens is not None and longest * (len(current) + 1) > max_tokens)):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[dict[str, Sequence[int]]], pad_id: int) -> dict[str, "torch.Tensor"]:
    """Right-pad examples into ``input_ids`` (``pad_id``), ``attention_mask`` (0 on padding) and ``labels`` (-100 on padding).

    >>> b = collate([{"input_ids": [5], "labels": [5]}, {"input_ids": [6, 7], "labels": [-100, 7]}], pad_id=0)
    >>> b["input_ids"].tolist(), b["attention_mask"].tolist(), b["labels"].tolist()
    ([[5, 0], [6, 7]], [[1, 0], [1, 1]], [[5, -100], [-100, 7]])
    """
    import torch

    if not examples:
        raise ValueError("collate got no examples")
    n = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), n), int(pad_id), dtype=torch.long)
    labels = torch.full((len(examples), n), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), n), dtype=torch.long)
    for i, e in enumerate(examples):
        k = len(e["input_ids"])
        if len(e["labels"]) != k:
            raise ValueError(f"example {i}: {k} input ids but {len(e['labels'])} labels: they must match")
        ids[i, :k] = torch.tensor(list(e["input_ids"]), dtype=torch.long)
        labels[i, :k] = torch.tensor(list(e["labels"]), dtype=torch.long)
        mask[i, :k] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class BatchedExamples:
    """A dataset whose items are whole batches (lists of examples), so that the shared ``Trainer`` — which
    shuffles and splits item indices — trains on the length buckets of :func:`length_batches`. Use it with
    ``Trainer(batch_size=1, collate_fn=BatchedExamples.collator(pad_id))``.

    >>> ds = BatchedExamples([{"input_ids": [1, 2], "labels": [1, 2]}, {"input_ids": [3], "labels": [3]}], batch_size=2)
    >>> len(ds), BatchedExamples.collator(0)([ds[0]])["input_ids"].tolist()
    (1, [[3, 0], [1, 2]])
    """

    def __init__(self, examples: Sequence[dict[str, Any]], batch_size: int, *, seed: int = 0,
                 max_tokens: int | None = None) -> None:
        if not examples:
            raise ValueError("no examples to batch")
        self.examples = list(examples)
        self.batches = length_batches([len(e["input_ids"]) for e in self.examples], batch_size, seed=seed,
                                      max_tokens=max_tokens)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> list[dict[str, Any]]:
        return [self.examples[j] for j in self.batches[i]]

    @staticmethod
    def collator(pad_id: int) -> Callable[[list[list[dict[str, Any]]]], dict[str, "torch.Tensor"]]:
        """A ``collate_fn`` that joins the batches it is given (one, or one per ``torchrun`` process share)."""
        return functools.partial(_collate_batches, pad_id=int(pad_id))


def _collate_batches(items: list[list[dict[str, Any]]], pad_id: int) -> dict[str, "torch.Tensor"]:
    return collate([e for batch in items for e in batch], pad_id)


# ---------------------------------------------------------------------------------------------- training
def _label_tokens(batch: dict[str, "torch.Tensor"]) -> int:
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


class TokenMeter:
    """A ``Trainer`` callback that adds ``tokens`` (non-padding tokens) and ``tokens_per_s`` to every step's
    log; the step function calls :meth:`count` with each batch.

    >>> import torch
    >>> m = TokenMeter(); m.count({"attention_mask": torch.ones(2, 3)}); m.tokens
    6
    """

    def __init__(self) -> None:
        self.tokens = 0
        self.total_tokens = 0
        self._t0 = 0.0

    def count(self, batch: dict[str, "torch.Tensor"]) -> None:
        self.tokens += int(batch["attention_mask"].sum())

    def on_fit_start(self, trainer: Any) -> None:
        self._t0 = time.perf_counter()

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self._t0 = time.perf_counter()

    def on_step_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        now = time.perf_counter()
        logs["tokens"] = self.tokens
        logs["tokens_per_s"] = self.tokens / max(now - self._t0, 1e-9)
        self.total_tokens += self.tokens
        self.tokens, self._t0 = 0, now

    def on_loss(self, trainer: Any, loss: float) -> None: ...
    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: Any) -> None: ...


def add_lora(model: "torch.nn.Module", *, r: int = 16, alpha: float = 32,
             target_modules: Sequence[str] = LLAMA_TARGETS, dropout: float = 0.0) -> Any:
    """``model`` with fresh ``peft`` LoRA adapters (r, alpha) on ``target_modules``; only they train.

    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> llama = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
    ...                                      num_attention_heads=2, num_key_value_heads=1))
    >>> sorted({n.split(".")[-3] for n, p in add_lora(llama, r=2).named_parameters() if p.requires_grad})
    ['lora_A', 'lora_B']
    """
    from peft import LoraConfig, TaskType, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in target_modules if t not in names]
    if missing:
        raise ValueError(f"the model has no layer named {missing}: LoRA targets must be among its linear layers "
                         f"(a Llama has q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        task_type=TaskType.CAUSAL_LM)
    return get_peft_model(model, config)


def lora_sft(model: "torch.nn.Module", examples: Sequence[dict[str, Any]], *, epochs: int = 1, lr: float = 1e-3,
             batch_size: int = 8, r: int = 16, alpha: float = 32,
             target_modules: Sequence[str] = LLAMA_TARGETS, seed: int = 0, progress: bool = True,
             val_examples: Sequence[dict[str, Any]] | None = None, max_tokens: int | None = None,
             pad_id: int = 0, **trainer_kwargs: Any) -> tuple[Any, Any]:
    """LoRA supervised fine-tuning with ``peft`` and the course's one loop (:class:`tutorlib.train.Trainer`):
    batches of similar lengths (:func:`length_batches`), the loss on the labelled (answer) tokens only.

    ``model`` is a causal LM (it gets LoRA adapters unless it is already a ``peft`` model). Returns the
    ``peft`` model and the ``History``, whose steps carry ``loss``, ``tokens`` and ``tokens_per_s``.
    ``trainer_kwargs`` go to the ``Trainer`` (``device``, ``precision``, ``checkpoint_dir``, ``log`` …).
    Defaults fit a Llama (LoRA r=16 on q/k/v/o, lr 1e-3, batch 8).

    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> _ = torch.manual_seed(0)
    >>> llama = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
    ...                                      num_attention_heads=2, num_key_value_heads=1))
    >>> data = [{"input_ids": [1, 5, 6, 7], "labels": [-100, -100, 6, 7]}] * 16
    >>> peft_model, history = lora_sft(llama, data, epochs=3, r=4, progress=False, log=False)
    >>> history.steps[-1]["loss"] < history.steps[0]["loss"], "tokens_per_s" in history.steps[0]
    (True, True)
    """
    if not examples:
        raise ValueError("no training examples")
    if not hasattr(model, "peft_config"):
        model = add_lora(model, r=r, alpha=alpha, target_modules=target_modules)
    resume = bool(trainer_kwargs.pop("resume", False))
    trainer = sft_trainer(model, lr=lr, seed=seed, progress=progress, pad_id=pad_id, **trainer_kwargs)
    train = BatchedExamples(examples, batch_size, seed=seed, max_tokens=max_tokens)
    val = BatchedExamples(val_examples, batch_size, seed=seed, max_tokens=max_tokens) if val_examples else None
    history = trainer.fit(train, val, epochs=epochs, resume=resume)
    return trainer.unwrapped_model, history


def sft_trainer(model: "torch.nn.Module", *, lr: float = 1e-3, seed: int = 0, progress: bool = True, pad_id: int = 0,
                **trainer_kwargs: Any) -> Any:
    """The ``Trainer`` :func:`lora_sft` uses: it trains on :class:`BatchedExamples` (one length bucket per
    step, split over ``torchrun`` processes), logs ``tokens``/``tokens_per_s`` per step (a :class:`TokenMeter`)
    and clips gradients at norm 1 unless told otherwise.

    >>> import torch
    >>> t = sft_trainer(torch.nn.Linear(2, 2), progress=False, log=False)
    >>> t.batch_size, any(isinstance(c, TokenMeter) for c in t.callbacks)
    (1, True)
    """
    from tutorlib.train import Trainer

    meter = TokenMeter()

    def step(trainer: Any, batch: dict[str, "torch.Tensor"]) -> dict[str, Any]:
        if trainer.model.training:
            meter.count(batch)
        return {"loss": trainer.model(**batch).loss}

    callbacks = list(trainer_kwargs.pop("callbacks", ())) + [meter]
    trainer_kwargs.setdefault("clip_grad_norm", 1.0)
    return Trainer(model, lr=lr, batch_size=_world_size(), collate_fn=BatchedExamples.collator(pad_id), seed=seed,
                   step_fn=step, progress=progress, callbacks=callbacks, **trainer_kwargs)


def _world_size() -> int:
    from tutorlib.train import dist_info

    return max(1, int(dist_info().world_size))


def evaluate_sft(model: "torch.nn.Module", examples: Sequence[dict[str, Any]], *, batch_size: int = 8,
                 pad_id: int = 0) -> dict[str, float]:
    """Mean loss and next-token accuracy over the labelled (answer) tokens of ``examples``, and their count.

    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> llama = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
    ...                                      num_attention_heads=2, num_key_value_heads=1))
    >>> sorted(evaluate_sft(llama, [{"input_ids": [1, 5, 6], "labels": [-100, 5, 6]}]))
    ['loss', 'token_accuracy', 'tokens']
    """
    import torch

    from tutorlib.train import model_device

    device = model_device(model)
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    try:
        with torch.no_grad():
            for idx in length_batches([len(e["input_ids"]) for e in examples], batch_size):
                batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx], pad_id).items()}
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
                target = batch["labels"][:, 1:]
                keep = target != IGNORE_INDEX
                logp = torch.log_softmax(logits[:, :-1], dim=-1)
                picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                loss_sum += float(-(picked * keep).sum())
                correct += int(((logits[:, :-1].argmax(-1) == target) & keep).sum())
                count += int(keep.sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("no labelled tokens in these examples: nothing to evaluate")
    return {"loss": loss_sum / count, "token_accuracy": correct / count, "tokens": count}
