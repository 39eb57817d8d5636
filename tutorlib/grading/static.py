"""What the grader reads in a notebook's source before running it: imports of the grading code, uses of an
exercise's reference implementation, and the hints the notebook's saved outputs say were shown.

The scan is AST based (IPython magics are translated to Python first). It runs in the grader's own
process on the notebook file, so nothing the notebook does at run time changes it. It catches the
plain ways of reaching the grading code or the library's answer; an obfuscated one is not found here,
but it still cannot make a protocol check pass, whose decision is made in the grader's process.

>>> grading_imports("from tutorlib.grading import check\\nimport tutorlib.grading.registry as r")
['import tutorlib.grading.registry as r']
>>> aliases = imports_of("from tutorlib.grading import compare")
>>> reference_uses("y = compare.describe(x)", ("tutorlib.grading.compare.describe",), aliases)
['tutorlib.grading.compare.describe']
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["to_python", "grading_imports", "imports_of", "reference_uses", "hints_shown"]

_ALLOWED_FROM_GRADING = {"check", "hint"}
_HINT_LINE = re.compile(r"💡 (ex\d{2}_\d+) hint (\d+) of \d+")


def to_python(source: str) -> ast.Module | None:
    """Parse a cell's source (magics translated by IPython when it is installed); None when it is not valid Python.

    >>> to_python("%time x = 1") is not None, to_python("def (:") is None
    (True, True)
    """
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))
    except Exception:  # noqa: BLE001 - not Python even after the magics: the cell will raise when run
        return None


def _line(source: str, node: ast.AST) -> str:
    seg = ast.get_source_segment(source, node)
    return (seg or ast.unparse(node)).strip().splitlines()[0][:120]


def grading_imports(source: str) -> list[str]:
    """The statements of a cell that reach the grading code (anything but ``from tutorlib.grading import check, hint``).

    Flags ``import tutorlib.grading…``, ``from tutorlib.grading… import …``, ``from tutorlib import grading``,
    ``tutorlib.grading`` as an attribute, any string naming ``tutorlib.grading`` (``__import__``,
    ``importlib.import_module``, ``sys.modules[...]``) and attributes of ``check``/``hint`` (``check.__globals__``).

    >>> grading_imports("import sys\\nsys.modules['tutorlib.grading.registry'].run_check = f")
    ["sys.modules['tutorlib.grading.registry'].run_check = f"]
    """
    tree = to_python(source)
    if tree is None:
        return []
    text = source if _parses(source) else ast.unparse(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        bad = False
        if isinstance(node, ast.Import):
            bad = any(a.name == "tutorlib.grading" or a.name.startswith("tutorlib.grading.") for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod == "tutorlib.grading":
                bad = any(a.name not in _ALLOWED_FROM_GRADING for a in node.names)
            elif mod.startswith("tutorlib.grading."):
                bad = True
            elif mod == "tutorlib":
                bad = any(a.name == "grading" for a in node.names)
        elif isinstance(node, ast.Attribute):
            bad = (node.attr == "grading" and isinstance(node.value, ast.Name) and node.value.id == "tutorlib") or (
                isinstance(node.value, ast.Name) and node.value.id in _ALLOWED_FROM_GRADING)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            bad = "tutorlib.grading" in node.value or "tutorlib/grading" in node.value
        if bad:
            stmt = _statement_of(tree, node)
            line = _line(text, stmt)
            if line not in found:
                found.append(line)
    return found


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
        return True
    except SyntaxError:
        return False


def _statement_of(tree: ast.Module, node: ast.AST) -> ast.AST:
    best: ast.AST = node
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.stmt) and hasattr(stmt, "lineno") and hasattr(node, "lineno"):
            if stmt.lineno <= node.lineno <= (stmt.end_lineno or stmt.lineno) and not isinstance(
                    stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.While, ast.With, ast.Try)):
                best = stmt
    return best


def imports_of(source: str, aliases: dict[str, str] | None = None) -> dict[str, str]:
    """Update ``aliases`` (local name → dotted name) with a cell's imports; names the cell redefines are dropped.

    >>> imports_of("import tutorlib.llm.layers as L\\nfrom torch import nn\\nx = 1")
    {'L': 'tutorlib.llm.layers', 'nn': 'torch.nn'}
    """
    out = dict(aliases or {})
    tree = to_python(source)
    if tree is None:
        return out
    for name in _defined(tree):
        out.pop(name, None)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    out[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _defined(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.With)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
            if isinstance(stmt, ast.With):
                targets = [i.optional_vars for i in stmt.items]
            for t in targets:
                for n in ast.walk(t) if t is not None else ():
                    if isinstance(n, ast.Name):
                        names.add(n.id)
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    base = aliases.get(node.id)
    if base is None:
        return None
    return ".".join([base] + parts[::-1])


def reference_uses(source: str, reference: Iterable[str], aliases: dict[str, str]) -> list[str]:
    """The reference names (dotted) that a cell imports or uses, resolved through ``aliases`` and the cell's own imports.

    A name counts when it resolves (by import) to the same object as a reference, so re-exports are found too.

    >>> reference_uses("def describe(x):\\n    return 'mine'", ("tutorlib.grading.compare.describe",), {})
    []
    """
    from .protocol import _unwrap, resolve_reference

    refs = {name: _unwrap(obj) for name in reference if (obj := resolve_reference(name)) is not None}
    tree = to_python(source)
    if tree is None or not refs:
        return []
    local = imports_of(source, aliases)
    seen: dict[str, Any] = {}
    found: list[str] = []

    def hit(dotted: str | None) -> None:
        if not dotted or not dotted.startswith("tutorlib."):
            return
        # Every prefix of an attribute chain: `L.rms_norm(x).sum` names `tutorlib.llm.layers.rms_norm`.
        parts = dotted.split(".")
        for cut in range(len(parts), 1, -1):
            name = ".".join(parts[:cut])
            if name not in seen:
                obj = resolve_reference(name)
                seen[name] = _unwrap(obj) if obj is not None else None
            for ref_name, ref in refs.items():
                if seen[name] is not None and seen[name] is ref and ref_name not in found:
                    found.append(ref_name)

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                hit(f"{node.module}.{a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                hit(a.name)
        elif isinstance(node, (ast.Attribute, ast.Name)) and isinstance(getattr(node, "ctx", None), ast.Load):
            hit(_dotted(node, local))
    return found


def hints_shown(cells: Iterable[Any]) -> dict[str, int]:
    """Per exercise, the highest hint number the notebook's saved outputs show (``💡 ex05_2 hint 2 of 3``).

    This is what the notebook reports, for information; it is not verified.

    >>> hints_shown([{"cell_type": "code", "outputs": [{"output_type": "stream", "text": "💡 ex05_2 hint 2 of 3: x"}]}])
    {'ex05_2': 2}
    """
    shown: dict[str, int] = {}
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []) or []:
            text = out.get("text", "")
            if not text and isinstance(out.get("data"), dict):
                text = out["data"].get("text/plain", "")
            if isinstance(text, list):
                text = "".join(text)
            for m in _HINT_LINE.finditer(str(text)):
                shown[m.group(1)] = max(shown.get(m.group(1), 0), int(m.group(2)))
    return shown
