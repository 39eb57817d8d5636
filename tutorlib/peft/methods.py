"""Every fine-tuning method of lesson 06 as one builder: a MiniLM review classifier with only that method's weights trainable.

Methods (``METHODS``):

============== =====================================================================================
``head``       frozen encoder, train the linear head only (a linear probe)
``full``       train everything (the baseline PEFT tries to match)
``lora-ours``  LoRA from scratch (:mod:`tutorlib.peft.lora`) on the attention projections
``lora``       ``peft`` LoRA (``LoraConfig``)
``dora``       ``peft`` DoRA (``LoraConfig(use_dora=True)``): LoRA on the direction, a learnt magnitude
``ia3``        ``peft`` (IA)³: learnt scaling vectors on keys, values and the feed-forward activations
``prefix``     ``peft`` prefix tuning: learnt key/value prefixes in every attention layer
``prompt``     ``peft`` prompt tuning: learnt virtual tokens prepended to the input embeddings
``houlsby``    bottleneck adapters after attention and feed-forward (:mod:`tutorlib.peft.adapters`)
``pfeiffer``   one bottleneck adapter per layer, after the feed-forward block
============== =====================================================================================

How ``peft`` is attached to :class:`~tutorlib.models.MiniLMClassifier` (which wraps a
``BertModel`` at ``.encoder`` and mean-pools it, because all-MiniLM-L6-v2 was trained with mean pooling
and its pooler output, which ``BertForSequenceClassification`` uses, was not):

- LoRA, DoRA, IA³ only need named ``nn.Linear`` layers, so ``get_peft_model`` is applied to the
  whole classifier with *no* ``task_type`` and ``modules_to_save=["head"]``. The new head then
  trains and is saved inside the adapter file; ``forward(input_ids, attention_mask)`` is unchanged.
- Prefix and prompt tuning need a transformers model (its config and word embeddings), so they are
  applied to the inner ``BertModel`` with ``task_type=FEATURE_EXTRACTION`` (``PeftModelForFeatureExtraction``).
  Prompt tuning prepends ``num_virtual_tokens`` positions to the hidden states, so
  :class:`PromptMiniLMClassifier` extends the attention mask with ones before mean pooling.
  The head lives outside the ``PeftModel`` and is saved next to the adapter (``head.safetensors``).
  ``peft``'s ``disable_adapter()`` fails on a ``BertModel`` (it has no ``prepare_inputs_for_generation``):
  call ``model.encoder.base_model`` for the unadapted encoder instead.

>>> from tutorlib.models import count_parameters
>>> model = build_model("lora", num_labels=2, r=8)
>>> n = count_parameters(model); n.trainable < 0.01 * n.total
True
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from tutorlib.models import MiniLMClassifier, load_encoder, mean_pool
from tutorlib.peft.adapters import inject_adapters
from tutorlib.peft.lora import find_linear_names, inject_lora

__all__ = [
    "METHODS",
    "PEFT_LIBRARY_METHODS",
    "DEFAULT_LR",
    "MethodConfig",
    "PromptMiniLMClassifier",
    "build_model",
    "save_trained",
    "load_trained",
    "read_config",
    "uses_peft",
]

METHODS: tuple[str, ...] = ("head", "full", "lora-ours", "lora", "dora", "ia3", "prefix", "prompt", "houlsby", "pfeiffer")
#: Methods built with the ``peft`` library (their artefacts are ``peft`` adapter folders).
PEFT_LIBRARY_METHODS: tuple[str, ...] = ("lora", "dora", "ia3", "prefix", "prompt")

#: Learning rates for AdamW at batch 32. Measured: full fine-tuning 5e-5 and LoRA r=8 2e-3 (a 2,000-review
#: movie sample, 2 epochs); head 3e-2 (69.2 % vs 68.8 % at 1e-2) and IA³ 3e-2 (77.9 % vs 74.2 % at 1e-2, 68.8 % at
#: 3e-3) with ``benchmarks/peft.py --sweep`` (400 bundled reviews, 2 epochs, validation accuracy). DoRA uses
#: LoRA's rate; prefix 1e-2, prompt 3e-2 and adapters 1e-3 are the usual values from their papers and the peft
#: examples, not swept here (run ``--sweep prefix prompt houlsby pfeiffer`` to check them on your machine).
DEFAULT_LR: dict[str, float] = {
    "head": 3e-2, "full": 5e-5, "lora-ours": 2e-3, "lora": 2e-3, "dora": 2e-3, "ia3": 3e-2,
    "prefix": 1e-2, "prompt": 3e-2, "houlsby": 1e-3, "pfeiffer": 1e-3,
}

# IA³ on BERT: scale keys and values (outputs) and the feed-forward activations (the *input* of the
# second feed-forward Linear, ``layer.N.output.dense``). Regexes: peft matches them against full names.
_IA3_TARGETS = r".*\.(key|value)$|.*layer\.\d+\.output\.dense$"
_IA3_FEEDFORWARD = r".*layer\.\d+\.output\.dense$"


@dataclass
class MethodConfig:
    """The settings of one method (those that do not apply to it are ignored).

    >>> MethodConfig("lora", r=4).target_modules
    ('query', 'value')
    """

    method: str
    r: int = 8
    alpha: float | None = None
    dropout: float = 0.0
    target_modules: Sequence[str] = ("query", "value")
    num_virtual_tokens: int = 10
    bottleneck: int = 16
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.r < 1 or self.num_virtual_tokens < 1 or self.bottleneck < 1:
            raise ValueError(f"r, num_virtual_tokens and bottleneck must be positive, got {self.r}, "
                             f"{self.num_virtual_tokens}, {self.bottleneck}")
        if isinstance(self.target_modules, str):
            self.target_modules = (self.target_modules,)
        self.target_modules = tuple(self.target_modules)
        if not self.target_modules:
            raise ValueError("target_modules is empty: name at least one of query, key, value, dense")
        if self.alpha is None:
            self.alpha = 2.0 * self.r

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (for the artefact's config file).

        >>> MethodConfig("lora").to_dict()["alpha"]
        16.0
        """
        return {"method": self.method, "r": self.r, "alpha": self.alpha, "dropout": self.dropout,
                "target_modules": list(self.target_modules), "num_virtual_tokens": self.num_virtual_tokens,
                "bottleneck": self.bottleneck, "extra": self.extra}


class PromptMiniLMClassifier(MiniLMClassifier):
    """A :class:`~tutorlib.models.MiniLMClassifier` whose encoder may prepend virtual tokens (peft prompt tuning).

    Mean pooling then covers the virtual tokens too (their mask is extended with ones).
    """

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        extra = hidden.shape[1] - attention_mask.shape[1]
        if extra > 0:
            ones = torch.ones(attention_mask.shape[0], extra, dtype=attention_mask.dtype, device=attention_mask.device)
            attention_mask = torch.cat([ones, attention_mask], dim=1)
        return mean_pool(hidden, attention_mask)


def uses_peft(method: str) -> bool:
    """True for the methods built with the ``peft`` library.

    >>> uses_peft("lora"), uses_peft("lora-ours")
    (True, False)
    """
    return method in PEFT_LIBRARY_METHODS


def _quiet_peft() -> None:
    # peft 0.21 calls a transformers helper that transformers 5 marks deprecated; the warning is not ours to fix.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def _encoder(base: str | Path | None, encoder: nn.Module | None) -> nn.Module:
    return copy.deepcopy(encoder) if encoder is not None else load_encoder(base)


def build_model(method: str | MethodConfig, num_labels: int = 2, base: str | Path | None = None, *,
                encoder: nn.Module | None = None, dropout_head: float = 0.1, **settings: Any) -> nn.Module:
    """A MiniLM classifier prepared for ``method``: ``forward(input_ids, attention_mask) -> logits`` (B, num_labels).

    ``base`` is a local folder or hub id (default: the bundled MiniLM); ``encoder`` a loaded encoder
    to copy instead (faster when building many models). ``settings`` are :class:`MethodConfig`
    fields (``r``, ``alpha``, ``dropout``, ``target_modules``, ``num_virtual_tokens``, ``bottleneck``).
    The model's ``tutorlib_method`` attribute holds the :class:`MethodConfig`.

    >>> from tutorlib.models import count_parameters
    >>> m = build_model("head", num_labels=3)
    >>> count_parameters(m).trainable
    1155
    """
    cfg = method if isinstance(method, MethodConfig) else MethodConfig(method, **settings)
    name = cfg.method
    enc = _encoder(base, encoder)
    if name in ("prefix", "prompt"):
        _quiet_peft()
        from peft import PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model

        if name == "prefix":
            pcfg = PrefixTuningConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=cfg.num_virtual_tokens)
        else:
            pcfg = PromptTuningConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=cfg.num_virtual_tokens)
        model: nn.Module = PromptMiniLMClassifier(num_labels, encoder=get_peft_model(enc, pcfg), dropout=dropout_head)
    else:
        model = MiniLMClassifier(num_labels, encoder=enc, dropout=dropout_head, freeze_encoder=(name == "head"))
        if name == "lora-ours":
            inject_lora(model, cfg.target_modules, r=cfg.r, alpha=float(cfg.alpha), dropout=cfg.dropout,
                        trainable=("head",))
        elif name in ("houlsby", "pfeiffer"):
            inject_adapters(model.encoder, bottleneck=cfg.bottleneck, placement=name)
            for p in model.head.parameters():
                p.requires_grad_(True)
        elif name in ("lora", "dora", "ia3"):
            _quiet_peft()
            from peft import IA3Config, LoraConfig, get_peft_model

            if name == "ia3":
                pcfg = IA3Config(target_modules=_IA3_TARGETS, feedforward_modules=_IA3_FEEDFORWARD,
                                 modules_to_save=["head"])
            else:
                pcfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                  target_modules=list(cfg.target_modules), use_dora=(name == "dora"),
                                  modules_to_save=["head"])
            try:
                model = get_peft_model(model, pcfg)
            except ValueError as exc:
                raise ValueError(f"peft could not build {name} with target_modules={list(cfg.target_modules)}: {exc}. "
                                 f"This model's Linear layers are named {find_linear_names(model)} "
                                 "(MiniLM's: query, key, value, dense)") from exc
    model.tutorlib_method = cfg  # type: ignore[attr-defined]
    return model


# --------------------------------------------------------------------------- artefacts

_CONFIG = "tutorlib_model.json"
_HEAD = "head.safetensors"
_WEIGHTS = "trainable.safetensors"
_FULL = "model.safetensors"


def save_trained(model: nn.Module, folder: str | Path, base: str | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """Save what ``build_model`` + training changed, so :func:`load_trained` can rebuild the model.

    - ``peft`` methods: the ``peft`` adapter folder (``adapter_model.safetensors``, kilobytes) — plus
      ``head.safetensors`` for prefix/prompt tuning;
    - ``lora-ours``, adapters, ``head``: only the trainable tensors (``trainable.safetensors``);
    - ``full``: the whole classifier (``model.safetensors``).

    ``base`` is recorded (None = the bundled MiniLM), with ``extra`` (e.g. the label names), in
    ``tutorlib_model.json``.

    >>> import tempfile
    >>> m = build_model("head", num_labels=2)
    >>> sorted(p.name for p in save_trained(m, tempfile.mkdtemp()).iterdir())
    ['trainable.safetensors', 'tutorlib_model.json']
    """
    from safetensors.torch import save_file

    cfg: MethodConfig | None = getattr(model, "tutorlib_method", None)
    if cfg is None:
        raise ValueError("this model was not made by tutorlib.peft.build_model (no tutorlib_method attribute)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = cfg.method
    if name in ("lora", "dora", "ia3"):
        model.save_pretrained(str(folder))  # type: ignore[operator]
    elif name in ("prefix", "prompt"):
        model.encoder.save_pretrained(str(folder))  # type: ignore[operator]
        save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}, str(folder / _HEAD))
    elif name == "full":
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(folder / _FULL))
    else:
        state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(state, str(folder / _WEIGHTS))
    meta = {"method": cfg.to_dict(), "num_labels": _num_labels(model), "base": base, **(extra or {})}
    (folder / _CONFIG).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


def _num_labels(model: nn.Module) -> int:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return int(inner.num_labels)


def read_config(folder: str | Path) -> dict[str, Any]:
    """The ``tutorlib_model.json`` of a folder written by :func:`save_trained`, with a clear error if absent.

    >>> import tempfile; read_config(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...
    """
    path = Path(folder) / _CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{folder} has no {_CONFIG}: pass a folder written by `tutorlib finetune` "
                                "(or tutorlib.peft.save_trained)")
    return json.loads(path.read_text(encoding="utf-8"))


def load_trained(folder: str | Path, base: str | Path | None = None, encoder: nn.Module | None = None) -> nn.Module:
    """Rebuild a model saved with :func:`save_trained` on a fresh base model, in eval mode.

    ``base`` overrides the recorded base model (a local folder or hub id).

    >>> import tempfile
    >>> d = save_trained(build_model("head", num_labels=2), tempfile.mkdtemp())
    >>> type(load_trained(d)).__name__
    'MiniLMClassifier'
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = read_config(folder)
    mc = meta["method"]
    cfg = MethodConfig(mc["method"], r=mc["r"], alpha=mc["alpha"], dropout=mc["dropout"],
                       target_modules=tuple(mc["target_modules"]), num_virtual_tokens=mc["num_virtual_tokens"],
                       bottleneck=mc["bottleneck"], extra=mc.get("extra", {}))
    base = base if base is not None else meta.get("base")
    num_labels = int(meta["num_labels"])
    name = cfg.method
    if name in ("lora", "dora", "ia3"):
        _quiet_peft()
        from peft import PeftModel

        inner = MiniLMClassifier(num_labels, encoder=_encoder(base, encoder))
        model: nn.Module = PeftModel.from_pretrained(inner, str(folder))
    elif name in ("prefix", "prompt"):
        _quiet_peft()
        from peft import PeftModel

        enc = PeftModel.from_pretrained(_encoder(base, encoder), str(folder))
        model = PromptMiniLMClassifier(num_labels, encoder=enc)
        model.head.load_state_dict(load_file(str(folder / _HEAD)))
    elif name == "full":
        model = MiniLMClassifier(num_labels, encoder=_encoder(base, encoder))
        model.load_state_dict(load_file(str(folder / _FULL)))
    else:
        model = build_model(cfg, num_labels, base, encoder=encoder)
        state = load_file(str(folder / _WEIGHTS))
        missing = [k for k in state if k not in dict(model.named_parameters())]
        if missing:
            raise ValueError(f"{folder}/{_WEIGHTS} holds {missing[:3]} which this model lacks: wrong base model?")
        model.load_state_dict(state, strict=False)
    model.tutorlib_method = cfg  # type: ignore[attr-defined]
    return model.eval()
