"""Import ``shap`` without paying numba's compile time on the course's small problems.

``shap`` decorates its masking and partition helpers with ``numba.njit``. Numba compiles them on
the first explanation of a session, which cost 8–9.5 s of CPU in our measurements
(``benchmarks/explain.py``, 2-core machine) — more than the explanations themselves at the sizes
used here (tens of tokens, hundreds of evaluations), where the plain-Python versions take
milliseconds. So the first import of shap
through :func:`import_shap` turns numba's JIT off *while shap's modules are being defined* and
restores the setting immediately afterwards: numba code anywhere else is unaffected.

Set ``TUTORLIB_SHAP_JIT=1`` to keep shap compiled (worth it for large tabular problems with the
Partition or Exact explainers), or import shap yourself before tutorlib does.

>>> shap = import_shap()
>>> hasattr(shap, "Explainer")
True
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

__all__ = ["import_shap", "shap_jit_enabled"]


def shap_jit_enabled() -> bool:
    """True when ``TUTORLIB_SHAP_JIT`` asks for shap's numba-compiled helpers.

    >>> isinstance(shap_jit_enabled(), bool)
    True
    """
    return os.environ.get("TUTORLIB_SHAP_JIT", "").strip().lower() in {"1", "true", "yes", "on"}


def import_shap() -> ModuleType:
    """Return the ``shap`` module, importing it with numba's JIT disabled unless already imported or opted out.

    >>> import_shap().__name__
    'shap'
    """
    if "shap" in sys.modules or shap_jit_enabled():
        import shap

        return shap
    try:
        from numba.core import config as numba_config
    except ImportError:  # numba missing: shap will say so itself
        import shap

        return shap
    old = numba_config.DISABLE_JIT
    numba_config.DISABLE_JIT = True
    try:
        import shap
    finally:
        numba_config.DISABLE_JIT = old
    return shap
