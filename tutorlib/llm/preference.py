"""Preference tuning with DPO (direct preference optimisation), from scratch on the course's one loop.

A preference pair is a prompt with a *chosen* and a *rejected* answer. DPO raises the policy's
log-probability of the chosen answer relative to a frozen reference (the model before tuning) and lowers
the rejected one's, with no reward model and no sampling:

    loss = -log σ(β · [(log π(y_w|x) - log π_ref(y_w|x)) - (log π(y_l|x) - log π_ref(y_l|x))])

The bracketed log-ratios times β are the implicit *rewards* that ``trl`` logs as ``rewards/chosen`` and
``rewards/rejected``. The reference log-probs never change, so :func:`reference_logprobs` computes them
once, before training, instead of keeping a second model in memory.

>>> import torch
>>> out = dpo_loss(torch.tensor([-5.0]), torch.tensor([-9.0]), torch.tensor([-6.0]), torch.tensor([-8.0]), beta=0.1)
>>> round(float(out.loss), 4), round(float(out.chosen_rewards[0]), 2), round(float(out.rejected_rewards[0]), 2)
(0.5981, 0.1, -0.1)
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from tutorlib.llm.sft import IGNORE_INDEX, chat_example, collate, length_batches

__all__ = ["DPOLoss", "preference_example", "sequence_logprobs", "dpo_loss", "pair_logprobs", "reference_logprobs",
           "dpo_train", "preference_accuracy"]


class DPOLoss(NamedTuple):
    """The DPO loss (mean over the pairs) and each pair's implicit rewards β·log(π/π_ref), detached."""

    loss: "torch.Tensor"
    chosen_rewards: "torch.Tensor"
    rejected_rewards: "torch.Tensor"


def _prompt_messages(prompt: str | Sequence[dict[str, str]]) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]


def preference_example(tokenizer: Any, prompt_messages: str | Sequence[dict[str, str]], chosen: str, rejected: str, *,
                       system: str | None = None, max_length: int | None = None) -> dict[str, Any]:
    """One preference pair as ``{"chosen": {...}, "rejected": {...}}``, each a :func:`~tutorlib.llm.sft.chat_example`
    (ids through the chat template, labels on the answer only). ``prompt_messages`` is a user prompt or a
    list of chat messages ending with the user's turn.

    >>> from transformers import AutoTokenizer
    >>> from tutorlib.models import llm_path
    >>> tok = AutoTokenizer.from_pretrained(llm_path("smollm2"))
    >>> ex = preference_example(tok, "Capital of France?", "Paris.", "Berlin.", system="Be brief.")
    >>> [tok.decode([t for t, y in zip(ex[k]["input_ids"], ex[k]["labels"]) if y != -100]) for k in ("chosen", "rejected")]
    ['Paris.<|im_end|>', 'Berlin.<|im_end|>']
    """
    messages = _prompt_messages(prompt_messages)
    if not messages or messages[-1]["role"] != "user":
        raise ValueError("the prompt must end with a user message: the chosen and rejected answers reply to it")
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError(f"the {name} answer is empty: a pair needs two non-empty answers")
    if chosen == rejected:
        raise ValueError("the chosen and rejected answers are the same: the pair teaches nothing")
    return {name: chat_example(tokenizer, messages + [{"role": "assistant", "content": answer}], system=system,
                               max_length=max_length)
            for name, answer in (("chosen", chosen), ("rejected", rejected))}


def sequence_logprobs(model: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor",
                      labels: "torch.Tensor") -> "torch.Tensor":
    """The sum, per sequence, of the log-probabilities the model gives the labelled tokens (labels != -100):
    ``log π(answer | prompt)``. Shape ``(B,)``; it keeps the graph (call under ``no_grad`` to evaluate).

    >>> import torch
    >>> class Uniform(torch.nn.Module):
    ...     def forward(self, input_ids, attention_mask):
    ...         return type("Out", (), {"logits": torch.zeros(*input_ids.shape, 4)})()
    >>> ids = torch.tensor([[1, 2, 3]])
    >>> round(float(sequence_logprobs(Uniform(), ids, torch.ones_like(ids), torch.tensor([[-100, 2, 3]]))[0]), 4)  # 2·ln(1/4)
    -2.7726
    """
    import torch

    if input_ids.dim() != 2 or labels.shape != input_ids.shape:
        raise ValueError(f"expected input_ids and labels of shape (B, T), got {tuple(input_ids.shape)} and "
                         f"{tuple(labels.shape)}: add a batch dimension with ids[None]")
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    picked = torch.log_softmax(logits, dim=-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * keep).sum(dim=1)


def dpo_loss(policy_chosen: "torch.Tensor", policy_rejected: "torch.Tensor", ref_chosen: "torch.Tensor",
             ref_rejected: "torch.Tensor", beta: float = 0.1) -> DPOLoss:
    """The DPO loss of a batch of pairs from their summed answer log-probs under the policy and the reference.

    >>> import torch
    >>> z = torch.zeros(2)
    >>> round(float(dpo_loss(z, z, z, z).loss), 4)   # policy = reference: ln 2
    0.6931
    """
    import torch.nn.functional as F

    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    shapes = {tuple(t.shape) for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)}
    if len(shapes) != 1:
        raise ValueError(f"the four log-prob tensors must have one shape (B,), got {sorted(shapes)}")
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    loss = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio)).mean()
    return DPOLoss(loss, beta * chosen_ratio.detach(), beta * rejected_ratio.detach())


def _pair_batch(pairs: Sequence[dict[str, Any]], pad_id: int) -> dict[str, "torch.Tensor"]:
    """Chosen answers then rejected ones in one right-padded batch of 2B rows (one forward pass for both)."""
    return collate([p["chosen"] for p in pairs] + [p["rejected"] for p in pairs], pad_id)


def _pair_lengths(examples: Sequence[dict[str, Any]]) -> list[int]:
    return [max(len(e["chosen"]["input_ids"]), len(e["rejected"]["input_ids"])) for e in examples]


def pair_logprobs(model: Any, examples: Sequence[dict[str, Any]], *, batch_size: int = 8,
                  pad_id: int = 0) -> "torch.Tensor":
    """``(N, 2)`` summed answer log-probs (chosen, rejected) of each pair under ``model``, without gradients.

    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> llama = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
    ...                                      num_attention_heads=2, num_key_value_heads=1))
    >>> pair = {"chosen": {"input_ids": [1, 4, 5], "labels": [-100, 4, 5]}, "rejected": {"input_ids": [1, 6], "labels": [-100, 6]}}
    >>> tuple(pair_logprobs(llama, [pair, pair]).shape)
    (2, 2)
    """
    import torch

    from tutorlib.train import model_device

    device = model_device(model)
    out = torch.zeros(len(examples), 2)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for idx in length_batches(_pair_lengths(examples), batch_size):
                batch = {k: v.to(device) for k, v in _pair_batch([examples[i] for i in idx], pad_id).items()}
                logps = sequence_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["labels"]).cpu()
                out[idx, 0], out[idx, 1] = logps[:len(idx)], logps[len(idx):]
    finally:
        model.train(was_training)
    return out


def reference_logprobs(model: Any, examples: Sequence[dict[str, Any]], batch_size: int = 8,
                       pad_id: int = 0) -> "torch.Tensor":
    """The reference model's ``(N, 2)`` answer log-probs, computed once before DPO starts (the reference is
    frozen, so they never change and no second copy of the model is needed during training).

    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> llama = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
    ...                                      num_attention_heads=2, num_key_value_heads=1))
    >>> pair = {"chosen": {"input_ids": [1, 4, 5], "labels": [-100, 4, 5]}, "rejected": {"input_ids": [1, 6], "labels": [-100, 6]}}
    >>> bool((reference_logprobs(llama, [pair]) < 0).all())
    True
    """
    return pair_logprobs(model, examples, batch_size=batch_size, pad_id=pad_id)


class _PairBatches:
    """Length-bucketed batches of pairs (one item = one batch), each pair with its reference log-probs."""

    def __init__(self, examples: Sequence[dict[str, Any]], reference: "torch.Tensor", batch_size: int, seed: int) -> None:
        self.examples, self.reference = list(examples), reference
        self.batches = length_batches(_pair_lengths(self.examples), batch_size, seed=seed)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> list[tuple[dict[str, Any], "torch.Tensor"]]:
        return [(self.examples[j], self.reference[j]) for j in self.batches[i]]


def _collate_pairs(items: list[list[tuple[dict[str, Any], "torch.Tensor"]]], pad_id: int) -> dict[str, Any]:
    import torch

    pairs = [p for batch in items for p, _ in batch]
    refs = torch.stack([r for batch in items for _, r in batch])
    return {**_pair_batch(pairs, pad_id), "ref_chosen": refs[:, 0], "ref_rejected": refs[:, 1]}


class _RewardLog:
    """Adds the last batch's mean rewards, reward accuracy and margin to each step's log (``trl``'s names)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def on_step_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        logs.update(self.last)

    def on_fit_start(self, trainer: Any) -> None: ...
    def on_epoch_start(self, trainer: Any, epoch: int) -> None: ...
    def on_loss(self, trainer: Any, loss: float) -> None: ...
    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: Any) -> None: ...


def dpo_train(model: Any, examples: Sequence[dict[str, Any]], *, beta: float = 0.1, epochs: int = 1, lr: float = 5e-4,
              batch_size: int = 4, seed: int = 0, reference: "torch.Tensor | None" = None, pad_id: int = 0,
              val_examples: Sequence[dict[str, Any]] | None = None, progress: bool = True, nll_weight: float = 0.0,
              **trainer_kwargs: Any) -> Any:
    """Train ``model`` with DPO on :func:`preference_example` pairs through :class:`tutorlib.train.Trainer`;
    returns its ``History`` (per step: ``loss``, ``rewards/chosen``, ``rewards/rejected``,
    ``rewards/accuracies``, ``rewards/margins``).

    The reference is ``model`` as it is now (e.g. after SFT): its log-probs are computed once
    (:func:`reference_logprobs`) unless ``reference`` gives them. Only parameters with ``requires_grad``
    train: add LoRA first with :func:`tutorlib.llm.sft.add_lora`. ``trainer_kwargs`` go to the ``Trainer``.

    ``nll_weight`` α adds α times the chosen answers' negative log-likelihood per token to the loss (the
    "RPO" loss of Pang et al. 2024, ``rpo_alpha`` in ``trl``): plain DPO only needs the chosen answer to gain
    *relative* to the rejected one and can lower both, which on a model's own mistakes can move its greedy
    answer somewhere worse than either; the NLL term keeps the chosen answer likely. The logged ``loss`` then
    includes that term.

    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> _ = torch.manual_seed(0)
    >>> llama = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
    ...                                      num_attention_heads=2, num_key_value_heads=1))
    >>> pair = {"chosen": {"input_ids": [1, 4, 5], "labels": [-100, 4, 5]}, "rejected": {"input_ids": [1, 6], "labels": [-100, 6]}}
    >>> history = dpo_train(llama, [pair] * 8, epochs=3, lr=1e-2, progress=False, log=False)
    >>> history.steps[-1]["rewards/margins"] > 0 and history.steps[-1]["loss"] < history.steps[0]["loss"]
    True
    """
    import functools

    from tutorlib.train import Trainer, dist_info

    if not examples:
        raise ValueError("no preference pairs to train on")
    if nll_weight < 0:
        raise ValueError(f"nll_weight must be >= 0, got {nll_weight}")
    if reference is None:
        reference = reference_logprobs(model, examples, batch_size=batch_size, pad_id=pad_id)
    if tuple(reference.shape) != (len(examples), 2):
        raise ValueError(f"reference must hold (chosen, rejected) log-probs for each of the {len(examples)} pairs, "
                         f"got shape {tuple(reference.shape)}")
    rewards = _RewardLog()

    def step(trainer: Any, batch: dict[str, Any]) -> dict[str, Any]:
        logps = sequence_logprobs(trainer.model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        chosen, rejected = logps.chunk(2)
        out = dpo_loss(chosen, rejected, batch["ref_chosen"], batch["ref_rejected"], beta=beta)
        loss = out.loss
        if nll_weight:
            n_tokens = (batch["labels"][:len(chosen), 1:] != IGNORE_INDEX).sum().clamp(min=1)
            loss = loss + nll_weight * (-chosen.sum() / n_tokens)
        if trainer.model.training:
            rewards.last = {"rewards/chosen": float(out.chosen_rewards.mean()),
                            "rewards/rejected": float(out.rejected_rewards.mean()),
                            "rewards/accuracies": float((out.chosen_rewards > out.rejected_rewards).float().mean()),
                            "rewards/margins": float((out.chosen_rewards - out.rejected_rewards).mean())}
        return {"loss": loss}

    val = None
    if val_examples:
        val = _PairBatches(val_examples, reference_logprobs(model, val_examples, batch_size, pad_id), batch_size, seed)
    callbacks = list(trainer_kwargs.pop("callbacks", ())) + [rewards]
    resume = bool(trainer_kwargs.pop("resume", False))
    trainer_kwargs.setdefault("clip_grad_norm", 1.0)
    trainer = Trainer(model, lr=lr, batch_size=max(1, dist_info().world_size), step_fn=step, seed=seed,
                      collate_fn=functools.partial(_collate_pairs, pad_id=int(pad_id)), progress=progress,
                      callbacks=callbacks, **trainer_kwargs)
    return trainer.fit(_PairBatches(examples, reference, batch_size, seed), val, epochs=epochs, resume=resume)


def preference_accuracy(model: Any, examples: Sequence[dict[str, Any]], *, reference: "torch.Tensor | None" = None,
                        batch_size: int = 8, pad_id: int = 0) -> float:
    """Share of pairs the model prefers the right way: its implicit reward margin is positive when a
    ``reference`` (``(N, 2)`` log-probs) is given, else it simply gives the chosen answer more log-probability.

    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> llama = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
    ...                                      num_attention_heads=2, num_key_value_heads=1))
    >>> pair = {"chosen": {"input_ids": [1, 4, 5], "labels": [-100, 4, 5]}, "rejected": {"input_ids": [1, 6], "labels": [-100, 6]}}
    >>> 0.0 <= preference_accuracy(llama, [pair]) <= 1.0
    True
    """
    logps = pair_logprobs(model, examples, batch_size=batch_size, pad_id=pad_id)
    if reference is not None:
        logps = logps - reference
    return float((logps[:, 0] > logps[:, 1]).float().mean())
