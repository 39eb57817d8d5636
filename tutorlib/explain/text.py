"""Explain the MiniLM review classifier: SHAP, LIME, integrated gradients and attention, one interface.

:func:`explain_text` returns an :class:`~tutorlib.explain.attribution.Attribution` whatever the
method, with one score per word piece (``[CLS]``/``[SEP]`` left out), so methods can be compared
token by token:

- ``"shap"``: ``shap.Explainer(predict, shap.maskers.Text(tokenizer))`` — a Partition explainer
  that hides groups of tokens behind ``[MASK]`` and splits credit hierarchically (``max_evals``
  model calls).
- ``"lime"``: ``lime.lime_text.LimeTextExplainer`` on the same word pieces (``bow=False``, masked
  with ``[MASK]``), ``num_samples`` perturbations, a weighted linear surrogate.
- ``"ig"``: captum ``LayerIntegratedGradients`` on ``model.encoder.embeddings`` from a baseline
  with every word piece replaced by ``[PAD]`` while ``[CLS]`` and ``[SEP]`` stay, ``steps`` points.
- ``"attention"``: attention rollout (Abnar & Zuidema, 2020) or the last layer's attention,
  averaged over heads and over the query positions the classifier pools (it mean-pools all
  tokens, so ``query="mean"``; ``"cls"`` reads the ``[CLS]`` row). Unsigned.

SHAP and LIME only need predictions (many of them: slow on a CPU); IG needs gradients (one
batched backward pass); attention needs one forward pass with ``output_attentions=True``, which
the default SDPA attention does not return: :func:`attention_maps` switches the encoder to
``"eager"`` attention for that call.

>>> from tutorlib.explain.text import load_review_classifier, explain_text
>>> model, tok = load_review_classifier()
>>> explain_text(model, tok, "A lovely, quiet hotel.", method="attention").tokens
['a', 'lovely', ',', 'quiet', 'hotel', '.']
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from tutorlib.data import REVIEW_LABELS, load_reviews, text_collate
from tutorlib.explain.attribution import Attribution
from tutorlib.models import MiniLMClassifier, load_tokenizer, resolve_model_path
from tutorlib.runtime import seed_everything

__all__ = ["METHODS", "load_review_classifier", "train_review_classifier", "predict_proba", "encode",
           "ids_prob_fn", "attention_maps", "attention_rollout", "explain_shap", "explain_lime", "explain_ig",
           "explain_attention", "explain_text", "explain_many"]

METHODS = ("shap", "lime", "ig", "attention")


# --------------------------------------------------------------------------- model and predictions


def load_review_classifier(num_labels: int = 2, attn_implementation: str = "eager", dropout: float = 0.1,
                           name_or_path: str | None = None) -> tuple[MiniLMClassifier, Any]:
    """An (untrained-head) :class:`~tutorlib.models.MiniLMClassifier` whose encoder returns attention maps, and its tokenizer.

    ``attn_implementation="eager"`` computes attention explicitly so ``output_attentions=True``
    works (SDPA is faster but returns no maps); both give the same predictions.

    >>> model, tok = load_review_classifier()
    >>> model.encoder.config._attn_implementation
    'eager'
    """
    from transformers import AutoModel

    path = resolve_model_path(name_or_path)
    encoder = AutoModel.from_pretrained(path, dtype=torch.float32, attn_implementation=attn_implementation)
    model = MiniLMClassifier(num_labels=num_labels, dropout=dropout, encoder=encoder.eval())
    return model.eval(), load_tokenizer(name_or_path)


def train_review_classifier(n_train: int | None = None, epochs: int = 1, lr: float = 1e-4, batch_size: int = 16,
                            max_length: int = 64, val_limit: int | None = None, seed: int = 0,
                            device: str | torch.device | None = None,
                            **trainer_kwargs: Any) -> tuple[MiniLMClassifier, Any, Any]:
    """Fine-tune the review classifier on ``n_train`` bundled reviews with :class:`tutorlib.train.Trainer`.

    Returns ``(model, tokenizer, history)``; the model is in eval mode on the Trainer's device.
    Explanations of an untrained head are meaningless, so every explanation lesson starts here.

    >>> model, tok, history = train_review_classifier(8, epochs=1, val_limit=8, progress=False, log=False)
    >>> "val_accuracy" in history.epochs[-1]
    True
    """
    from tutorlib.train import Trainer

    if n_train is not None and n_train < 2:
        raise ValueError(f"n_train must be at least 2 (or None for all reviews), got {n_train}")
    seed_everything(seed)
    model, tok = load_review_classifier()
    train = load_reviews("train", limit=n_train)
    val = load_reviews("val", limit=val_limit)
    trainer = Trainer(model, lr=lr, batch_size=batch_size, collate_fn=text_collate(tok, max_length), device=device,
                      seed=seed, **trainer_kwargs)
    history = trainer.fit(train, val, epochs=epochs)
    model.eval()
    return model, tok, history


def _device_of(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: explain one sentence at a time")
    if not text.strip():
        raise ValueError("text is empty: pass a sentence to explain")
    return text


def encode(tokenizer: Any, text: str, max_length: int = 128) -> dict[str, Any]:
    """Tokenize one text: ``input_ids`` (1, T) with ``[CLS]``/``[SEP]``, ``attention_mask``, word-piece ``tokens`` and character ``offsets`` (both without specials).

    Raises if the text is longer than ``max_length`` tokens (the explainers would see different texts).

    >>> enc = encode(load_tokenizer(), "Not bad at all")
    >>> enc["tokens"], tuple(enc["input_ids"].shape)
    (['not', 'bad', 'at', 'all'], (1, 6))
    """
    _check_text(text)
    enc = tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
    ids = enc["input_ids"]
    if ids.shape[1] > max_length:
        raise ValueError(f"the text has {ids.shape[1]} tokens, more than max_length={max_length}: "
                         "explain a shorter text or raise max_length")
    if ids.shape[1] <= 2:
        raise ValueError(f"the text {text!r} has no tokens besides [CLS] and [SEP]: pass real words")
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())[1:-1]
    offsets = [tuple(o) for o in enc["offset_mapping"][0].tolist()][1:-1]
    return {"input_ids": ids, "attention_mask": enc["attention_mask"], "tokens": tokens, "offsets": offsets,
            "ids": ids[0, 1:-1].tolist()}


def predict_proba(model: nn.Module, tokenizer: Any, texts: Sequence[str], batch_size: int = 64,
                  max_length: int = 128) -> np.ndarray:
    """Class probabilities (n, C) for a list of texts, in eval mode, without gradients.

    >>> model, tok = load_review_classifier()
    >>> predict_proba(model, tok, ["great", "awful"]).shape
    (2, 2)
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got one str: wrap it in a list")
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("texts is empty: pass at least one text")
    dev = _device_of(model)
    out = []
    with _eval_mode(model), torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            logits = model(batch["input_ids"].to(dev), batch["attention_mask"].to(dev))
            out.append(torch.softmax(logits.float(), dim=-1).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def ids_prob_fn(model: nn.Module, tokenizer: Any, batch_size: int = 64) -> Callable[[Sequence[Sequence[int]]], np.ndarray]:
    """A function from lists of word-piece ids (no specials) to class probabilities (n, C): ``[CLS] ids [SEP]``, padded.

    This is what deletion curves call: removing tokens in id space, never re-tokenizing.

    >>> model, tok = load_review_classifier()
    >>> ids_prob_fn(model, tok)([[2307], [2307, 3309]]).shape
    (2, 2)
    """
    dev = _device_of(model)
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id

    def prob(id_lists: Sequence[Sequence[int]]) -> np.ndarray:
        seqs = [[cls, *[int(i) for i in ids], sep] for ids in id_lists]
        if not seqs:
            raise ValueError("no sequences to score")
        out = []
        with _eval_mode(model), torch.no_grad():
            for i in range(0, len(seqs), batch_size):
                chunk = seqs[i:i + batch_size]
                T = max(len(s) for s in chunk)
                ids = torch.full((len(chunk), T), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), T), dtype=torch.long)
                for r, s in enumerate(chunk):
                    ids[r, :len(s)] = torch.tensor(s)
                    mask[r, :len(s)] = 1
                out.append(torch.softmax(model(ids.to(dev), mask.to(dev)).float(), -1).cpu())
        return torch.cat(out).numpy().astype(np.float64)

    return prob


def _base(model: nn.Module, tokenizer: Any, text: str, target: int | None, label_names: Sequence[str] | None,
          max_length: int) -> tuple[dict[str, Any], np.ndarray, int]:
    enc = encode(tokenizer, text, max_length)
    probs = predict_proba(model, tokenizer, [text], max_length=max_length)[0]
    if target is None:
        target = int(np.argmax(probs))
    if not isinstance(target, (int, np.integer)) or not 0 <= int(target) < len(probs):
        raise ValueError(f"target must be a class index in 0..{len(probs) - 1}, got {target!r}")
    return enc, probs, int(target)


def _attribution(enc: dict[str, Any], scores: np.ndarray, method: str, target: int, probs: np.ndarray, text: str,
                 label_names: Sequence[str] | None, signed: bool = True, **meta: Any) -> Attribution:
    return Attribution(tokens=enc["tokens"], scores=np.asarray(scores, dtype=np.float64), method=method,
                       target=target, prediction=float(probs[target]), text=text, input_ids=enc["ids"],
                       label_names=tuple(label_names) if label_names else None, signed=signed, meta=meta)


# --------------------------------------------------------------------------- SHAP and LIME


def explain_shap(model: nn.Module, tokenizer: Any, text: str, target: int | None = None, *, max_evals: int = 200,
                 batch_size: int = 64, label_names: Sequence[str] | None = REVIEW_LABELS,
                 max_length: int = 128) -> Attribution:
    """SHAP values of each word piece with ``shap.maskers.Text(tokenizer)`` (Partition explainer, ``max_evals`` calls).

    The Partition explainer refines a hierarchy of token groups until ``max_evals`` runs out; below
    that depth every token of a group gets an equal share of the group's value, so a small budget
    gives *phrase-level* credit (and ``[CLS]``/``[SEP]``, always kept, can receive a share:
    ``meta["special_value"]``). Word-piece scores + ``special_value`` + ``base_value`` = prediction.
    ``meta["explanation"]`` keeps shap's own ``Explanation`` (for ``shap.plots.text``).

    >>> model, tok = load_review_classifier()
    >>> len(explain_shap(model, tok, "Lovely staff.", max_evals=20))
    3
    """
    from tutorlib.explain._shap import import_shap

    shap = import_shap()
    start = time.perf_counter()
    enc, probs, target = _base(model, tokenizer, text, target, label_names, max_length)
    if max_evals < 2 * len(enc["tokens"]) + 1:
        raise ValueError(f"max_evals={max_evals} is too small for {len(enc['tokens'])} tokens: "
                         f"use at least {2 * len(enc['tokens']) + 1}")

    def f(texts: Any) -> np.ndarray:
        return predict_proba(model, tokenizer, list(texts), batch_size=batch_size, max_length=max_length)

    names = list(label_names) if label_names else None
    explainer = shap.Explainer(f, shap.maskers.Text(tokenizer), output_names=names)
    sv = explainer([text], max_evals=max_evals, batch_size=batch_size, silent=True)
    values = np.asarray(sv.values[0])
    n = len(enc["tokens"])
    if values.shape[0] != n + 2:
        raise RuntimeError(f"shap returned {values.shape[0]} token values for {n + 2} tokens; "
                           "the tokenizer must be a fast Hugging Face tokenizer with offsets")
    return _attribution(enc, values[1:-1, target], "shap", target, probs, text, label_names,
                        explanation=sv, base_value=float(np.asarray(sv.base_values[0])[target]),
                        special_value=float(values[0, target] + values[-1, target]),
                        max_evals=max_evals, seconds=time.perf_counter() - start)


def _wordpiece_splitter(tokenizer: Any) -> Callable[[str], list[str]]:
    def split(s: str) -> list[str]:
        enc = tokenizer(s, add_special_tokens=False, return_offsets_mapping=True)
        return [s[a:b] for a, b in enc["offset_mapping"]]

    return split


def explain_lime(model: nn.Module, tokenizer: Any, text: str, target: int | None = None, *, num_samples: int = 300,
                 kernel_width: float = 25.0, seed: int = 0, batch_size: int = 64,
                 label_names: Sequence[str] | None = REVIEW_LABELS, max_length: int = 128) -> Attribution:
    """LIME weights of each word piece: ``LimeTextExplainer`` with word pieces as features, masked by ``[MASK]``.

    ``meta`` holds the surrogate's R² (``score``), ``intercept`` and local prediction.

    >>> model, tok = load_review_classifier()
    >>> explain_lime(model, tok, "Lovely staff.", num_samples=20).method
    'lime'
    """
    from lime.lime_text import LimeTextExplainer

    start = time.perf_counter()
    enc, probs, target = _base(model, tokenizer, text, target, label_names, max_length)
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")
    n = len(enc["tokens"])
    explainer = LimeTextExplainer(kernel_width=kernel_width, class_names=list(label_names) if label_names else None,
                                  feature_selection="none", split_expression=_wordpiece_splitter(tokenizer),
                                  bow=False, mask_string=tokenizer.mask_token, random_state=seed)

    def f(texts: list[str]) -> np.ndarray:
        return predict_proba(model, tokenizer, texts, batch_size=batch_size, max_length=max_length)

    exp = explainer.explain_instance(text, f, labels=(target,), num_features=n, num_samples=num_samples)
    features = exp.domain_mapper.indexed_string.num_words()
    if features != n:
        raise RuntimeError(f"LIME found {features} features for {n} word pieces; report this text: {text!r}")
    scores = np.zeros(n)
    for j, w in exp.local_exp[target]:
        scores[int(j)] = w
    return _attribution(enc, scores, "lime", target, probs, text, label_names, score=float(exp.score),
                        intercept=float(exp.intercept[target]), local_pred=float(np.ravel(exp.local_pred)[0]),
                        num_samples=num_samples, kernel_width=kernel_width, seed=seed,
                        seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------- integrated gradients


def explain_ig(model: nn.Module, tokenizer: Any, text: str, target: int | None = None, *, steps: int = 32,
               internal_batch_size: int = 16, output: str = "prob", layer: str = "embeddings",
               rule: str = "gausslegendre", label_names: Sequence[str] | None = REVIEW_LABELS,
               max_length: int = 128) -> Attribution:
    """Integrated gradients per word piece: captum ``LayerIntegratedGradients`` on the embedding layer, ``[PAD]`` baseline.

    The baseline keeps ``[CLS]`` and ``[SEP]`` and replaces every word piece by ``[PAD]`` (attended
    to, so only the words change); attributions are summed over the hidden dimension. ``output``
    ``"prob"`` explains the target's probability (so scores add up to p(x) − p(baseline)),
    ``"logit"`` its logit. ``layer="word_embeddings"`` interpolates the word vectors only.
    ``rule`` is the quadrature rule along the path (captum's ``method``: ``"gausslegendre"``,
    ``"riemann_middle"``, …). ``meta["delta"]`` is captum's convergence delta.

    >>> model, tok = load_review_classifier()
    >>> a = explain_ig(model, tok, "Lovely staff.", steps=8)
    >>> abs(a.meta["delta"]) < 0.05
    True
    """
    from captum.attr import LayerIntegratedGradients

    if output not in ("prob", "logit"):
        raise ValueError(f"output must be 'prob' or 'logit', got {output!r}")
    if layer not in ("embeddings", "word_embeddings"):
        raise ValueError(f"layer must be 'embeddings' or 'word_embeddings', got {layer!r}")
    start = time.perf_counter()
    enc, probs, target = _base(model, tokenizer, text, target, label_names, max_length)
    dev = _device_of(model)
    ids, mask = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
    baseline = ids.clone()
    baseline[0, 1:-1] = tokenizer.pad_token_id

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids, attention_mask).float()
        return torch.softmax(logits, -1) if output == "prob" else logits

    module = model.encoder.embeddings if layer == "embeddings" else model.encoder.embeddings.word_embeddings
    with _eval_mode(model):
        lig = LayerIntegratedGradients(forward, module)
        attr, delta = lig.attribute(ids, baselines=baseline, additional_forward_args=(mask,), target=target,
                                    n_steps=steps, method=rule, internal_batch_size=internal_batch_size,
                                    return_convergence_delta=True)
    scores = attr.sum(-1)[0, 1:-1].detach().double().cpu().numpy()
    return _attribution(enc, scores, "ig", target, probs, text, label_names, delta=float(delta.reshape(-1)[0]),
                        steps=steps, output=output, layer=layer, rule=rule, seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------- attention


@contextlib.contextmanager
def _eager_attention(model: nn.Module) -> Iterator[None]:
    encoder = model.encoder
    old = getattr(encoder.config, "_attn_implementation", "eager")
    switched = old != "eager"
    if switched:
        encoder.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switched:
            encoder.set_attn_implementation(old)


def attention_maps(model: nn.Module, tokenizer: Any, text: str, max_length: int = 128) -> tuple[list[str], torch.Tensor]:
    """All attention maps for one text: tokens (with ``[CLS]``/``[SEP]``) and a (layers, heads, T, T) tensor.

    Row ``q`` of a map is how query token ``q`` spreads its attention over the keys (rows sum to 1).

    >>> model, tok = load_review_classifier()
    >>> tokens, att = attention_maps(model, tok, "Lovely staff.")
    >>> tokens[0], tuple(att.shape)
    ('[CLS]', (6, 12, 5, 5))
    """
    enc = encode(tokenizer, text, max_length)
    dev = _device_of(model)
    with _eval_mode(model), _eager_attention(model), torch.no_grad():
        out = model.encoder(input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev),
                            output_attentions=True)
    if not out.attentions:
        raise RuntimeError("the encoder returned no attention maps: load it with attn_implementation='eager'")
    att = torch.stack([a[0] for a in out.attentions]).float().cpu()
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return tokens, att


def attention_rollout(att: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Attention rollout: multiply the head-averaged maps of every layer, each mixed with the identity for the residual path.

    ``att`` is (layers, heads, T, T) (or (layers, T, T), already averaged). Returns the (T, T)
    rollout, rows summing to 1: row ``q`` says how much of query ``q``'s final state traces back to
    each input token.

    >>> att = torch.full((2, 1, 2, 2), 0.5)      # two layers that mix both tokens evenly
    >>> attention_rollout(att).tolist()         # each layer: 0.5·A + 0.5·I = [[.75, .25], [.25, .75]]
    [[0.625, 0.375], [0.375, 0.625]]
    """
    if att.dim() == 4:
        att = att.mean(1)
    if att.dim() != 3 or att.shape[1] != att.shape[2]:
        raise ValueError(f"expected attention maps (layers, heads, T, T) or (layers, T, T), got {tuple(att.shape)}")
    if not 0 <= residual <= 1:
        raise ValueError(f"residual must be in [0, 1], got {residual}")
    T = att.shape[-1]
    eye = torch.eye(T, dtype=att.dtype, device=att.device)
    rollout = eye
    for layer in att:
        a = (1 - residual) * layer + residual * eye
        a = a / a.sum(-1, keepdim=True)
        rollout = a @ rollout
    return rollout


def explain_attention(model: nn.Module, tokenizer: Any, text: str, target: int | None = None, *,
                      mode: str = "rollout", query: str = "mean", label_names: Sequence[str] | None = REVIEW_LABELS,
                      max_length: int = 128) -> Attribution:
    """Attention as a token score: ``mode="rollout"`` (all layers) or ``"last"`` (last layer), heads averaged.

    ``query="mean"`` averages the rows of every position (the classifier mean-pools all of them);
    ``"cls"`` reads the ``[CLS]`` row. The score is unsigned and the same for every target class.

    >>> model, tok = load_review_classifier()
    >>> a = explain_attention(model, tok, "Lovely staff.", mode="last")
    >>> a.signed, len(a)
    (False, 3)
    """
    if mode not in ("rollout", "last"):
        raise ValueError(f"mode must be 'rollout' or 'last', got {mode!r}")
    if query not in ("mean", "cls"):
        raise ValueError(f"query must be 'mean' or 'cls', got {query!r}")
    start = time.perf_counter()
    enc, probs, target = _base(model, tokenizer, text, target, label_names, max_length)
    _, att = attention_maps(model, tokenizer, text, max_length)
    rel = attention_rollout(att) if mode == "rollout" else att[-1].mean(0)
    row = rel.mean(0) if query == "mean" else rel[0]
    return _attribution(enc, row[1:-1].double().numpy(), "attention", target, probs, text, label_names, signed=False,
                        mode=mode, query=query, seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------- one entry point


def explain_text(model: nn.Module, tokenizer: Any, text: str, method: str = "shap", target: int | None = None,
                 **kw: Any) -> Attribution:
    """Explain the classifier's prediction on ``text`` with ``method`` ∈ {"shap", "lime", "ig", "attention"}.

    ``target`` defaults to the predicted class; ``**kw`` go to the method
    (:func:`explain_shap` ``max_evals``, :func:`explain_lime` ``num_samples``/``kernel_width``/``seed``,
    :func:`explain_ig` ``steps``/``output``/``rule``, :func:`explain_attention` ``mode``/``query``).

    >>> model, tok = load_review_classifier()
    >>> explain_text(model, tok, "Great food!", method="ig", steps=4).tokens
    ['great', 'food', '!']
    """
    fns = {"shap": explain_shap, "lime": explain_lime, "ig": explain_ig, "attention": explain_attention}
    if method not in fns:
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (the review classifier), got {type(model).__name__}")
    return fns[method](model, tokenizer, _check_text(text), target, **kw)


def explain_many(model: nn.Module, tokenizer: Any, texts: Sequence[str], methods: Sequence[str] = METHODS,
                 method_kwargs: dict[str, dict[str, Any]] | None = None, target: int | None = None,
                 progress: bool = True) -> dict[str, list[Attribution]]:
    """Explain every text with every method: ``{method: [Attribution per text]}`` (a tqdm bar over the work).

    ``method_kwargs`` maps a method name to its keyword arguments, e.g. ``{"shap": {"max_evals": 100}}``.

    >>> model, tok = load_review_classifier()
    >>> out = explain_many(model, tok, ["Great food!"], methods=("ig", "attention"), progress=False)
    >>> sorted(out)
    ['attention', 'ig']
    """
    from tqdm.auto import tqdm

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}: use some of {METHODS}")
    method_kwargs = method_kwargs or {}
    out: dict[str, list[Attribution]] = {m: [] for m in methods}
    bar = tqdm(total=len(texts) * len(methods), desc="explaining", disable=not progress)
    for text in texts:
        for m in methods:
            bar.set_postfix_str(m)
            out[m].append(explain_text(model, tokenizer, text, method=m, target=target, **method_kwargs.get(m, {})))
            bar.update(1)
    bar.close()
    return out
