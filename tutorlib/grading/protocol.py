"""The check protocol: every check in three parts — make inputs, call the learner's code, compare.

A check is a class registered with :func:`exercise`::

    @exercise("ex00_2", points=1)
    class AccuracyCheck:
        names = ("accuracy",)                   # the learner's objects the check uses
        reference = ()                          # library functions the answer must not use
        hints = ("argmax over dim 1", "...")    # shown one at a time by hint("ex00_2")

        def inputs(self, gen):                  # plain data, randomness only from `gen`
            return {"logits": torch.randn(37, 5, generator=gen)}
        def call(self, learner, inputs):        # runs in the learner's kernel: look up, call, return data
            return learner.call(learner.function("accuracy"), inputs["logits"], ...)
        def compare(self, inputs, outputs):     # decides: raise CheckFailed, or return a note / None
            expect_close(outputs, ..., "accuracy(...)")

In the notebook, ``check("ex00_2")`` runs all three in the kernel with the exercise's fixed seed
(:func:`run_in_process`). ``tutorlib grade`` makes the inputs in its own process with a seed it picks
at grading time, sends them to the kernel as files (:mod:`.wire`), runs only ``call`` there
(``tutorlib.grading._gradehook.run_call``), reads the outputs back and runs ``compare`` in its own
process (:func:`judge`). Only a normal return of ``compare`` there is a pass.

``call`` returns plain data only (tensors, numbers, str, bool, None, and lists/tuples/dicts of them):
the result crosses :func:`tutorlib.grading.wire.roundtrip` in both paths, so a returned module or
function fails the same way in the notebook and in the grader. Before ``compare`` runs, ``self.device``
is the device the learner's code ran on (what ``learner.device`` was in the kernel).

>>> import torch
>>> @exercise("ex99_6")
... class Double:
...     def inputs(self, gen): return {"x": torch.randn(4, generator=gen)}
...     def call(self, learner, inputs): return learner.call(learner.function("double"), inputs["x"])
...     def compare(self, inputs, outputs):
...         if not torch.allclose(outputs, 2 * inputs["x"]): raise CheckFailed("double(x) is not 2 * x")
>>> check = get_exercise("ex99_6").check
>>> run_in_process(check, {"double": lambda x: 2 * x}, torch.device("cpu"), seed=1) is None
True
>>> judge(check, make_inputs(check, 3), torch.zeros(4))
('fail', 'double(x) is not 2 * x')
"""

from __future__ import annotations

import dis
import importlib
import types
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from . import wire
from .compare import CheckFailed, NotAttempted, call_safely, expect_callable, expect_defined
from .registry import get_exercise, register

__all__ = [
    "exercise",
    "Learner",
    "run_in_process",
    "judge",
    "make_inputs",
    "run_call",
    "exercise_seed",
    "resolve_reference",
    "uses_reference",
    "hint",
    "HINT_MARK",
]

#: Printed before every hint; the grader counts hints shown from saved outputs that carry it.
HINT_MARK = "💡"


# --------------------------------------------------------------------------- the library's own implementation


def resolve_reference(dotted: str) -> Any:
    """The object a dotted name like ``tutorlib.llm.layers.rms_norm`` names, or None if it cannot be imported.

    >>> resolve_reference("tutorlib.grading.compare.describe").__name__
    'describe'
    >>> resolve_reference("tutorlib.no_such_module.f") is None
    True
    """
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except Exception:  # noqa: BLE001 - not a module at this depth: try a shorter prefix
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _unwrap(obj: Any) -> Any:
    seen = 0
    while hasattr(obj, "__wrapped__") and seen < 20:
        obj, seen = obj.__wrapped__, seen + 1
    return getattr(obj, "__func__", obj)


def _loaded_globals(code: types.CodeType, glob: dict[str, Any]) -> list[Any]:
    """The objects a function's code loads from its globals, following attribute chains on modules
    (``layers.rms_norm`` yields the module, then ``rms_norm``), nested functions included."""
    found: list[Any] = []
    cur: Any = None
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str):
            cur = glob.get(ins.argval)
            found.append(cur)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and isinstance(cur, types.ModuleType) and isinstance(ins.argval, str):
            cur = getattr(cur, ins.argval, None)
            found.append(cur)
        else:
            cur = None
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found += _loaded_globals(const, glob)
    return found


def uses_reference(fn: Any, reference: tuple[str, ...]) -> str | None:
    """The dotted reference name ``fn`` is, or uses through its globals (``rms_norm(...)``, ``layers.rms_norm(...)``); else None.

    >>> from tutorlib.grading.compare import describe
    >>> uses_reference(describe, ("tutorlib.grading.compare.describe",))
    'tutorlib.grading.compare.describe'
    >>> uses_reference(lambda x: x, ("tutorlib.grading.compare.describe",)) is None
    True
    """
    if not reference:
        return None
    refs = {name: _unwrap(obj) for name in reference if (obj := resolve_reference(name)) is not None}
    if not refs:
        return None

    def which(obj: Any) -> str | None:
        try:
            target = _unwrap(obj)
        except Exception:  # noqa: BLE001 - an object whose attributes cannot be read is not the reference
            return None
        for name, ref in refs.items():
            if target is ref:
                return name
        return None

    found = which(fn)
    if found:
        return found
    func = _unwrap(fn)
    code, glob = getattr(func, "__code__", None), getattr(func, "__globals__", None)
    if not isinstance(code, types.CodeType) or not isinstance(glob, dict):
        return None
    for obj in _loaded_globals(code, glob):
        found = which(obj)
        if found:
            return found
    return None


def _reference_message(name: str) -> str:
    return f"your answer uses the library's own implementation `{name}`: write it yourself"


# --------------------------------------------------------------------------- what `call` gets


@dataclass
class Learner:
    """The learner's side as ``call`` sees it: look objects up, call them safely, on :attr:`device`.

    >>> learner = Learner({"double": lambda x: 2 * x}, torch.device("cpu"))
    >>> learner.call(learner.function("double"), torch.ones(2))
    tensor([2., 2.])
    >>> learner.function("triple")
    Traceback (most recent call last):
    ...
    tutorlib.grading.compare.CheckFailed: `triple` is not defined: run the cell where you define it (and the cells above it), then check again
    """

    ns: Mapping[str, Any]
    device: torch.device
    reference: tuple[str, ...] = ()
    _names: dict[int, str] = field(default_factory=dict, repr=False)

    def get(self, name: str) -> Any:
        """The learner's object ``name``; fails with "not defined" when it is missing."""
        return expect_defined(self.ns, name)

    def function(self, name: str) -> Callable[..., Any]:
        """The learner's function ``name``; fails with "not defined", "not callable", or when it is the library's own."""
        fn = expect_callable(self.get(name), name)
        used = uses_reference(fn, self.reference)
        if used:
            raise CheckFailed(_reference_message(used))
        self._names[id(fn)] = name
        return fn

    def call(self, fn: Callable[..., Any], *args: Any, name: str | None = None, mutable: tuple[int, ...] = (),
             **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on copies of the arguments (see :func:`~tutorlib.grading.compare.call_safely`).

        ``NotImplementedError`` from the stub → not attempted; any other exception → a fail naming it;
        an argument changed in place → a fail. Arguments whose index is in ``mutable`` are passed as they are.
        """
        label = name or self._names.get(id(fn)) or getattr(fn, "__name__", "your function")
        return call_safely(fn, *args, name=label, mutable=mutable, **kwargs)


# --------------------------------------------------------------------------- registering a check


def exercise(
    exercise_id: str, *, points: float = 1, timeout: float = 60.0, single_thread: bool = True
) -> Callable[[type], type]:
    """Class decorator: register a protocol check (``inputs``, ``call``, ``compare``) as ``exercise_id``.

    Registers into the same registry as :func:`~tutorlib.grading.registry.register`, so ``check()``,
    the manifest, ``build-exercises`` and the grader see it. Optional class attributes: ``names``,
    ``reference`` (dotted names), ``hints``.

    >>> @exercise("ex99_7", points=2)
    ... class Echo:
    ...     def inputs(self, gen): return {"x": torch.rand(3, generator=gen)}
    ...     def call(self, learner, inputs): return learner.call(learner.function("echo"), inputs["x"])
    ...     def compare(self, inputs, outputs):
    ...         if not torch.equal(outputs, inputs["x"]): raise CheckFailed("echo(x) is not x")
    >>> get_exercise("ex99_7").points, type(get_exercise("ex99_7").check).__name__
    (2, 'Echo')
    """

    def decorate(cls: type) -> type:
        for part in ("inputs", "call", "compare"):
            if not callable(getattr(cls, part, None)):
                raise TypeError(f"{cls.__qualname__} (for {exercise_id}) has no method `{part}`: a protocol check "
                                "defines inputs(self, gen), call(self, learner, inputs) and compare(self, inputs, outputs)")
        cls.reference = tuple(getattr(cls, "reference", ()))
        cls.names = tuple(getattr(cls, "names", ()))
        cls.hints = tuple(getattr(cls, "hints", ()))
        cls.id = exercise_id
        check = cls()

        def in_process(ctx: Any) -> str | None:
            return run_in_process(check, ctx.ns, ctx.device, ctx.seed)

        in_process.__module__, in_process.__qualname__ = cls.__module__, cls.__qualname__
        register(exercise_id, points=points, timeout=timeout, single_thread=single_thread, hints=cls.hints,
                 _check=check)(in_process)
        return cls

    return decorate


def make_inputs(check: Any, seed: int) -> Any:
    """``check.inputs`` with a fresh CPU generator seeded with ``seed`` (run in the grader's process)."""
    return check.inputs(torch.Generator().manual_seed(int(seed)))


def run_call(check: Any, namespace: Mapping[str, Any], device: torch.device, inputs: Any) -> Any:
    """``check.call`` on the learner's namespace; the result is returned as it will cross the boundary."""
    learner = Learner(namespace, torch.device(device), tuple(getattr(check, "reference", ())))
    out = check.call(learner, inputs)
    return wire.roundtrip(out, "the data your code returned")


def run_in_process(check: Any, namespace: Mapping[str, Any], device: torch.device, seed: int) -> str | None:
    """All three parts in this process (the notebook's ``check()``); raises CheckFailed/NotAttempted, returns the note.

    The inputs cross :func:`~tutorlib.grading.wire.roundtrip` before ``call`` sees them, as in the grader.
    """
    inputs = make_inputs(check, seed)
    outputs = run_call(check, namespace, device, wire.roundtrip(inputs, "the check's inputs"))
    check.device = torch.device(device)
    return check.compare(inputs, outputs)


def judge(check: Any, inputs: Any, outputs: Any, device: torch.device | str = "cpu") -> tuple[str, str]:
    """Run ``compare`` here (the grader's process) and return ``(status, message)``; only a normal return is ``pass``.

    >>> class Never:
    ...     def compare(self, inputs, outputs): raise CheckFailed("no")
    >>> judge(Never(), {}, None)
    ('fail', 'no')
    """
    check.device = torch.device(device)
    try:
        note = check.compare(inputs, outputs)
    except NotAttempted as exc:
        return "not_attempted", str(exc)
    except CheckFailed as exc:
        return "fail", str(exc)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a crash in compare is the check's bug or an unexpected answer
        last = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return "error", (f"the check itself crashed ({last}); your answer may return an object the check does not "
                         "expect. If you think your answer is right, report this to the course authors")
    return "pass", note if isinstance(note, str) and note else "passed"


def exercise_seed(run_seed: int, exercise_id: str) -> int:
    """The seed of one exercise in a grading run whose seed is ``run_seed`` (recorded in the report).

    >>> exercise_seed(5, "ex00_1") != exercise_seed(5, "ex00_2")
    True
    """
    return (int(run_seed) ^ zlib.crc32(exercise_id.encode())) & (2**63 - 1)


# --------------------------------------------------------------------------- hints

_SHOWN: dict[str, int] = {}


def hint(exercise_id: str, number: int | None = None) -> None:
    """Print the next hint of ``exercise_id`` (or hint ``number``), one at a time.

    >>> @exercise("ex99_8")
    ... class _WithHints:
    ...     hints = ("look at dim 1", "use .argmax")
    ...     def inputs(self, gen): return {}
    ...     def call(self, learner, inputs): return None
    ...     def compare(self, inputs, outputs): return None
    >>> hint("ex99_8"); hint("ex99_8"); hint("ex99_8")
    💡 ex99_8 hint 1 of 2: look at dim 1
    💡 ex99_8 hint 2 of 2: use .argmax
    💡 ex99_8 hint 2 of 2: use .argmax (that was the last one)
    """
    ex = get_exercise(exercise_id)
    if not ex.hints:
        print(f"{HINT_MARK} no hints are written for {exercise_id} yet: reread the exercise's text and the message "
              f"of check({exercise_id!r})", flush=True)
        return
    total = len(ex.hints)
    if number is None:
        n = min(_SHOWN.get(exercise_id, 0) + 1, total)
        last = _SHOWN.get(exercise_id, 0) >= total
    else:
        if not 1 <= int(number) <= total:
            raise ValueError(f"{exercise_id} has hints 1 to {total}, not {number}")
        n, last = int(number), False
    _SHOWN[exercise_id] = max(_SHOWN.get(exercise_id, 0), n)
    tail = " (that was the last one)" if last else ""
    print(f"{HINT_MARK} {exercise_id} hint {n} of {total}: {ex.hints[n - 1]}{tail}", flush=True)
