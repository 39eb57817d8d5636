"""Tool calling: tool schemas from Python functions, a parser of the model's tool calls, a small agent loop.

A chat model is shown the tools as JSON schemas inside its prompt (``tokenizer.apply_chat_template(messages,
tools=...)``) and asked to answer with ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` when it
needs one. The agent loop parses that call, runs the Python function, appends the result as a ``tool``
message and asks the model again, until it answers in plain text or runs out of steps.

SmolLM2-135M's own chat template ignores ``tools``; :data:`TOOL_CHAT_TEMPLATE` is a ChatML template in the
common ``<tools>`` / ``<tool_call>`` / ``<tool_response>`` layout (the one of SmolLM2-1.7B, Qwen2.5, Hermes)
that :func:`render_chat` uses for a tokenizer whose template has no tool support.

>>> reg = ToolRegistry([calculator])
>>> reg.schemas()[0]["function"]["parameters"]["required"]
['expression']
>>> parse_tool_calls('<tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>')
[ToolCall(name='calculator', arguments={'expression': '6*7'})]
>>> reg.call(ToolCall("calculator", {"expression": "6*7"}))
'42'
"""

from __future__ import annotations

import ast
import collections.abc
import inspect
import json
import operator
import random
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from tutorlib.models.llm import cache_argument

__all__ = ["ToolCall", "ToolCallError", "ToolRegistry", "function_schema", "parse_tool_calls", "calculator",
           "TOOL_CHAT_TEMPLATE", "render_chat", "generate_batch", "chat_generator", "AgentResult", "run_agents",
           "run_agent", "arithmetic_questions", "few_shot_messages", "first_number", "answer_is_correct"]

TOOL_CHAT_TEMPLATE = (
    "{%- if tools %}{{ '<|im_start|>system\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\n\n' }}{%- endif %}"
    "{{- 'You have access to these tools, given as JSON schemas inside <tools></tools>:\n<tools>' }}"
    "{%- for tool in tools %}{{ '\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\n</tools>\nTo call a tool, answer only with a JSON object inside <tool_call></tool_call>:\n"
    "<tool_call>\n{\"name\": <tool-name>, \"arguments\": <arguments-object>}\n</tool_call><|im_end|>\n' }}"
    "{%- elif messages[0]['role'] == 'system' %}{{ '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}"
    "{%- elif message['role'] == 'tool' %}"
    "{{ '<|im_start|>user\n<tool_response>\n' + message['content'] + '\n</tool_response><|im_end|>\n' }}"
    "{%- elif message['role'] == 'assistant' and message.get('tool_calls') %}"
    "{{ '<|im_start|>assistant\n' }}{%- for call in message['tool_calls'] %}"
    "{{ '<tool_call>\n' + ({'name': call['function']['name'], 'arguments': call['function']['arguments']} | tojson)"
    " + '\n</tool_call>' }}{%- endfor %}{{ '<|im_end|>\n' }}"
    "{%- else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}")


class ToolCallError(ValueError):
    """The model's text holds a tool call that cannot be used (bad JSON, unknown tool, wrong arguments)."""


@dataclass
class ToolCall:
    """One parsed call: the tool's ``name`` and its keyword ``arguments``."""

    name: str
    arguments: dict[str, Any]

    def message(self) -> dict[str, Any]:
        """The assistant message that made this call, in the ``tool_calls`` format of chat templates.

        >>> ToolCall("f", {"x": 1}).message()["tool_calls"][0]["function"]
        {'name': 'f', 'arguments': {'x': 1}}
        """
        return {"role": "assistant", "content": "",
                "tool_calls": [{"type": "function", "function": {"name": self.name, "arguments": self.arguments}}]}


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def _json_type(hint: Any, where: str) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    if origin in (list, tuple, collections.abc.Sequence):
        args = typing.get_args(hint)
        return {"type": "array", **({"items": _json_type(args[0], where)} if args else {})}
    if origin is dict:
        return {"type": "object"}
    if origin is typing.Literal:
        values = list(typing.get_args(hint))
        return {**_json_type(type(values[0]), where), "enum": values}
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return {**_json_type(args[0], where), "nullable": True}
    raise TypeError(f"{where}: cannot turn the type hint {hint!r} into a JSON schema type: use str, int, float, "
                    "bool, list[...], dict or Literal[...]")


def _docstring_parts(doc: str) -> tuple[str, dict[str, str]]:
    """The description (text before ``Args:``) and each argument's description (Google style)."""
    doc = inspect.cleandoc(doc or "")
    head, _, rest = doc.partition("\nArgs:")
    args: dict[str, str] = {}
    current = None
    for line in rest.splitlines():
        if re.match(r"^\S", line):  # a new section (Returns:, >>> ...) ends the arguments
            break
        m = re.match(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
        if m:
            current = m.group(1)
            args[current] = m.group(2).strip()
        elif current and line.strip():
            args[current] += " " + line.strip()
    description = " ".join(p.strip() for p in head.split("\n>>>")[0].splitlines() if p.strip())
    return description, args


def function_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """The JSON schema of a Python function for ``apply_chat_template(tools=...)``, from its type hints and
    Google-style docstring (the same layout as ``transformers.utils.get_json_schema``).

    >>> def area(width: float, height: float = 1.0) -> float:
    ...     '''Area of a rectangle.
    ...
    ...     Args:
    ...         width: the width in metres
    ...         height: the height in metres
    ...     '''
    ...     return width * height
    >>> s = function_schema(area)["function"]
    >>> s["description"], s["parameters"]["properties"]["width"], s["parameters"]["required"]
    ('Area of a rectangle.', {'type': 'number', 'description': 'the width in metres'}, ['width'])
    """
    if not callable(fn) or not getattr(fn, "__name__", None):
        raise TypeError(f"expected a named Python function, got {fn!r}")
    description, arg_docs = _docstring_parts(fn.__doc__ or "")
    if not description:
        raise ValueError(f"{fn.__name__} has no docstring: the model reads the description to decide when to "
                         "call a tool, so write one (with an 'Args:' section for the arguments)")
    hints = typing.get_type_hints(fn)
    properties: dict[str, Any] = {}
    required = []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{fn.__name__}: *args/**kwargs cannot be described to a model; name each argument")
        if name not in hints:
            raise TypeError(f"{fn.__name__}: argument {name!r} has no type hint; add one (e.g. {name}: str)")
        if name not in arg_docs:
            raise ValueError(f"{fn.__name__}: argument {name!r} is not described in the docstring's 'Args:' section")
        properties[name] = {**_json_type(hints[name], f"{fn.__name__}({name})"), "description": arg_docs[name]}
        if param.default is inspect.Parameter.empty:
            required.append(name)
    schema: dict[str, Any] = {"type": "function", "function": {
        "name": fn.__name__, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required}}}
    if "return" in hints:
        schema["function"]["return"] = _json_type(hints["return"], f"{fn.__name__}(return)")
    return schema


class ToolRegistry:
    """Python functions the model may call, by name, with their schemas.

    >>> reg = ToolRegistry([calculator]); "calculator" in reg, len(reg)
    (True, 1)
    """

    def __init__(self, functions: Sequence[Callable[..., Any]] = ()) -> None:
        self.functions: dict[str, Callable[..., Any]] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        for fn in functions:
            self.register(fn)

    def register(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add ``fn`` (usable as a decorator); its schema is built now, so a bad docstring fails early."""
        schema = function_schema(fn)
        if fn.__name__ in self.functions:
            raise ValueError(f"a tool named {fn.__name__!r} is already registered")
        self.functions[fn.__name__], self._schemas[fn.__name__] = fn, schema
        return fn

    def __contains__(self, name: object) -> bool:
        return name in self.functions

    def __len__(self) -> int:
        return len(self.functions)

    def schemas(self) -> list[dict[str, Any]]:
        """The JSON schemas, in registration order (pass them as ``tools=``)."""
        return list(self._schemas.values())

    def validate(self, call: ToolCall) -> None:
        """Raise :class:`ToolCallError` unless ``call`` names a tool with the arguments its schema asks for."""
        if call.name not in self.functions:
            raise ToolCallError(f"unknown tool {call.name!r}: the tools are {', '.join(self.functions) or 'none'}")
        params = self._schemas[call.name]["function"]["parameters"]
        missing = [a for a in params["required"] if a not in call.arguments]
        extra = [a for a in call.arguments if a not in params["properties"]]
        if missing or extra:
            raise ToolCallError(f"{call.name}: " + "; ".join(
                ([f"missing argument(s) {', '.join(missing)}"] if missing else []) +
                ([f"unknown argument(s) {', '.join(extra)}"] if extra else [])))

    def call(self, call: ToolCall) -> str:
        """Run the tool; returns its result as text (JSON for non-string results). Errors of the call itself
        (:class:`ToolCallError`) and of the tool (any exception) propagate with the tool's name in front."""
        self.validate(call)
        try:
            out = self.functions[call.name](**call.arguments)
        except Exception as exc:  # the tool failed on these arguments: the loop shows the model the error
            raise ToolCallError(f"{call.name} failed: {type(exc).__name__}: {exc}") from exc
        return out if isinstance(out, str) else json.dumps(out)


_CALL_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)


def _one_call(obj: Any, snippet: str) -> ToolCall:
    if not isinstance(obj, dict):
        raise ToolCallError(f"a tool call must be a JSON object with 'name' and 'arguments', got {snippet[:80]!r}")
    if "function" in obj and isinstance(obj["function"], dict):  # the OpenAI-style nesting
        obj = obj["function"]
    name = obj.get("name")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args)
        except json.JSONDecodeError as exc:
            raise ToolCallError(f"the arguments of {name!r} are a string that is not JSON: {args[:80]!r}") from exc
    if not isinstance(name, str) or not name:
        raise ToolCallError(f"the tool call has no 'name': {snippet[:80]!r}")
    if not isinstance(args, dict):
        raise ToolCallError(f"the arguments of {name!r} must be a JSON object, got {args!r}")
    return ToolCall(name, args)


def parse_tool_calls(text: str) -> list[ToolCall]:
    """The tool calls in a model's reply: each ``<tool_call>`` block holding a JSON object (or a list of them).

    A missing closing tag is tolerated (generation often stops right after the JSON); text without
    ``<tool_call>`` has no calls (``[]``, a plain answer). Unusable JSON raises :class:`ToolCallError`.

    >>> parse_tool_calls("The answer is 4.")
    []
    >>> parse_tool_calls('<tool_call>[{"name": "f", "arguments": {}}, {"name": "g", "arguments": {"a": 1}}]')
    [ToolCall(name='f', arguments={}), ToolCall(name='g', arguments={'a': 1})]
    """
    if not isinstance(text, str):
        raise TypeError(f"expected the model's text, got {type(text).__name__}")
    calls: list[ToolCall] = []
    for block in _CALL_RE.findall(text):
        snippet = block.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
        if not snippet:
            raise ToolCallError("an empty <tool_call> block: expected a JSON object with 'name' and 'arguments'")
        try:
            obj, _ = json.JSONDecoder().raw_decode(snippet)  # ignores trailing text after the JSON
        except json.JSONDecodeError as exc:
            raise ToolCallError(f"the tool call is not valid JSON ({exc.msg} at character {exc.pos}): "
                                f"{snippet[:80]!r}") from exc
        calls.extend(_one_call(o, snippet) for o in (obj if isinstance(obj, list) else [obj]))
    return calls


_OPS: dict[type, Callable[..., Any]] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                                        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv,
                                        ast.Mod: operator.mod, ast.Pow: operator.pow, ast.USub: operator.neg,
                                        ast.UAdd: operator.pos}


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ValueError("exponents above 64 are not allowed")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ValueError(f"only numbers, + - * / // % ** and parentheses are allowed, not {ast.dump(node)[:40]}")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly and return the result.

    Args:
        expression: the arithmetic expression, for example "127 * 46" or "(365 - 14) / 3"

    >>> calculator("127 * 46"), calculator("7 / 2"), calculator("2 ** 10")
    ('5842', '3.5', '1024')
    """
    text = expression.replace("×", "*").replace("÷", "/").replace("^", "**").replace(",", "")
    try:
        value = _eval(ast.parse(text.strip(), mode="eval"))
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from exc
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(round(value, 6) if isinstance(value, float) else value)


def render_chat(tokenizer: Any, messages: Sequence[dict[str, Any]], tools: Sequence[Any] | None = None,
                add_generation_prompt: bool = True) -> str:
    """The prompt text of ``messages`` (and ``tools``: schemas, functions or a :class:`ToolRegistry`) through
    ``tokenizer.apply_chat_template``; a template that ignores tools is replaced by :data:`TOOL_CHAT_TEMPLATE`.

    >>> class Tok:  # any tokenizer with apply_chat_template
    ...     chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    ...     def apply_chat_template(self, messages, tools=None, chat_template=None, **kw):
    ...         return "uses the tool template" if chat_template == TOOL_CHAT_TEMPLATE else "own"
    >>> render_chat(Tok(), [{"role": "user", "content": "hi"}], tools=[calculator])
    'uses the tool template'
    """
    if isinstance(tools, ToolRegistry):
        tools = tools.schemas()
    schemas = [t if isinstance(t, dict) else function_schema(t) for t in tools or ()]
    own = getattr(tokenizer, "chat_template", None)
    template = None
    if schemas and (not own or "tools" not in own):
        template = TOOL_CHAT_TEMPLATE
    elif not own:
        template = TOOL_CHAT_TEMPLATE
    return tokenizer.apply_chat_template(list(messages), tools=schemas or None, chat_template=template,
                                         tokenize=False, add_generation_prompt=add_generation_prompt)


@torch.no_grad()
def generate_batch(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 32,
                   batch_size: int = 16, share_prefix: bool = True) -> list[str]:
    """Greedy continuations of already-formatted prompt texts, ``batch_size`` at a time, decoded without special
    tokens.

    Prompts are left-padded with an attention mask. With ``share_prefix`` the tokens that every prompt of a batch
    starts with (a system prompt, tool schemas, few-shot examples) go through the model once and their KV cache is
    copied to each row: the padding then sits between the shared prefix and each prompt's own end, which the mask
    hides, so the result is the same as without sharing, several times cheaper for long shared prompts.

    >>> generate_batch(None, None, [])
    []
    """
    if isinstance(prompts, str):
        raise TypeError("expected a list of prompts, got one string: wrap it in a list")
    outs: list[str] = []
    if not prompts:
        return outs
    dev = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for i in range(0, len(prompts), batch_size):
        rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[i:i + batch_size]]
        if min(map(len, rows)) == 0:
            raise ValueError("a prompt is empty: nothing to continue")
        n = 0  # the shared prefix, leaving at least one token of each prompt to feed generate
        if share_prefix and len(rows) > 1:
            limit = min(map(len, rows)) - 1
            while n < limit and all(r[n] == rows[0][n] for r in rows):
                n += 1
        width = max(map(len, rows)) - n
        ids = torch.full((len(rows), n + width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        ids[:, :n], mask[:, :n] = torch.tensor(rows[0][:n]), 1
        for j, r in enumerate(rows):
            ids[j, n + width - (len(r) - n):] = torch.tensor(r[n:])
            mask[j, n + width - (len(r) - n):] = 1
        kwargs: dict[str, Any] = {}
        if n >= 8:
            key = cache_argument(model)
            cache = getattr(model(ids[:1, :n].to(dev), use_cache=True), key)
            cache.batch_repeat_interleave(len(rows))
            kwargs[key] = cache
        out = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=pad, **kwargs)
        outs += [tokenizer.decode(row, skip_special_tokens=True) for row in out[:, ids.shape[1]:]]
    return outs


def chat_generator(model: Any, tokenizer: Any, tools: Sequence[Any] | ToolRegistry | None = None,
                   max_new_tokens: int = 40, batch_size: int = 16,
                   call_prefix: str = "") -> Callable[[Sequence[Sequence[dict[str, Any]]]], list[str]]:
    """``generate(conversations) -> replies`` for :func:`run_agents`: each conversation rendered with the tools
    by :func:`render_chat`, answered greedily in batches.

    ``call_prefix``: text forced at the start of the reply when the model has not called a tool yet (a simple
    constrained decoding: e.g. ``'<tool_call>\\n{"name": "calculator", "arguments": {"expression": "'`` leaves
    the model only the expression to write); it is part of the returned reply.

    >>> callable(chat_generator(None, None))
    True
    """
    def generate(conversations: Sequence[Sequence[dict[str, Any]]]) -> list[str]:
        prompts, prefixes = [], []
        for conv in conversations:
            called = any(m.get("role") == "tool" for m in conv[-1:])
            prefix = call_prefix if call_prefix and not called else ""
            prompts.append(render_chat(tokenizer, conv, tools) + prefix)
            prefixes.append(prefix)
        replies = generate_batch(model, tokenizer, prompts, max_new_tokens, batch_size)
        return [p + r for p, r in zip(prefixes, replies)]
    return generate


@dataclass
class AgentResult:
    """What one run of the agent loop did: the final ``answer`` (``None`` when it never answered), the
    ``messages`` exchanged, the tool ``calls`` made, and the ``errors`` met (bad calls, failing tools)."""

    question: str
    answer: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    steps: int = 0

    @property
    def valid_call(self) -> bool:
        """True when the model's first reply was a tool call that parsed and ran."""
        return bool(self.calls) and not (self.errors and self.errors[0].startswith("step 1"))


def run_agents(generate: Callable[[Sequence[Sequence[dict[str, Any]]]], list[str]], registry: ToolRegistry,
               questions: Sequence[str], max_steps: int = 3, system: str = "",
               examples: Sequence[dict[str, Any]] = ()) -> list[AgentResult]:
    """The agent loop for many questions at once: model → tool call → run it → ``tool`` message → model … until
    a reply without a tool call (the answer) or ``max_steps`` replies.

    A reply that holds a broken call (bad JSON, unknown tool, wrong arguments, failing tool) gets the error
    back as the tool message, so the model may correct itself on its next step. ``examples``: few-shot
    messages placed before each question.

    >>> replies = iter([['<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>'],
    ...                 ["The answer is 4."]])
    >>> r = run_agents(lambda convs: next(replies), ToolRegistry([calculator]), ["What is 2 plus 2?"])[0]
    >>> r.answer, r.calls[0].arguments, r.messages[2]
    ('The answer is 4.', {'expression': '2+2'}, {'role': 'tool', 'name': 'calculator', 'content': '4'})
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    head = ([{"role": "system", "content": system}] if system else []) + list(examples)
    results = [AgentResult(q, messages=[{"role": "user", "content": q}]) for q in questions]
    active = list(range(len(results)))
    for step in range(1, max_steps + 1):
        if not active:
            break
        replies = generate([head + results[i].messages for i in active])
        if len(replies) != len(active):
            raise ValueError(f"generate returned {len(replies)} replies for {len(active)} conversations")
        still = []
        for i, reply in zip(active, replies):
            r = results[i]
            r.steps = step
            try:
                calls = parse_tool_calls(reply)
            except ToolCallError as exc:
                r.errors.append(f"step {step}: {exc}")
                r.messages += [{"role": "assistant", "content": reply},
                               {"role": "tool", "name": "error", "content": f"error: {exc}"}]
                still.append(i)
                continue
            if not calls:
                r.answer = reply.strip()
                r.messages.append({"role": "assistant", "content": reply.strip()})
                continue
            call = calls[0]  # one call per step keeps the loop simple to follow
            r.messages.append(call.message())
            try:
                result = registry.call(call)
                r.calls.append(call)
            except ToolCallError as exc:
                r.errors.append(f"step {step}: {exc}")
                result = f"error: {exc}"
            r.messages.append({"role": "tool", "name": call.name, "content": result})
            still.append(i)
        active = still
    return results


def run_agent(generate: Callable[[Sequence[Sequence[dict[str, Any]]]], list[str]], registry: ToolRegistry,
              question: str, **kwargs: Any) -> AgentResult:
    """:func:`run_agents` for one question.

    >>> run_agent(lambda convs: ["no tool needed: 3"], ToolRegistry([calculator]), "1+2?").answer
    'no tool needed: 3'
    """
    return run_agents(generate, registry, [question], **kwargs)[0]


_TEMPLATES = [("What is {a} times {b}?", "{a} * {b}", operator.mul),
              ("How much is {a} multiplied by {b}?", "{a} * {b}", operator.mul),
              ("A box holds {b} pencils. How many pencils are in {a} boxes?", "{a} * {b}", operator.mul),
              ("What is {a} plus {b}?", "{a} + {b}", operator.add),
              ("A library had {a} books and bought {b} more. How many books does it have now?", "{a} + {b}",
               operator.add),
              ("What is {a} minus {b}?", "{a} - {b}", operator.sub),
              ("A train carried {a} passengers and {b} got off. How many are left?", "{a} - {b}", operator.sub)]


def arithmetic_questions(n: int = 36, seed: int = 0) -> list[dict[str, Any]]:
    """Course-written arithmetic word questions with exact answers (products of two 2-digit numbers, sums and
    differences of 3- and 4-digit ones): easy for a calculator, hard for a 135M-parameter model.

    Each item: ``question``, ``expression`` (what a correct tool call computes) and ``answer`` (an int).

    >>> q = arithmetic_questions(2, seed=1)[0]; sorted(q), eval(q["expression"]) == q["answer"]
    (['answer', 'expression', 'question'], True)
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text, expr, op = _TEMPLATES[i % len(_TEMPLATES)]
        if op is operator.mul:
            a, b = rng.randint(12, 99), rng.randint(13, 99)
        else:
            a, b = rng.randint(1000, 9999), rng.randint(100, 999)
        out.append({"question": text.format(a=a, b=b), "expression": expr.format(a=a, b=b), "answer": op(a, b)})
    return out


def few_shot_messages(items: Sequence[dict[str, Any]], use_tool: bool) -> list[dict[str, Any]]:
    """Worked examples as chat messages: with the tool (question → call → tool result → answer) or without
    (question → answer), both ending in ``"The answer is N."``.

    >>> [m["role"] for m in few_shot_messages(arithmetic_questions(1), use_tool=True)]
    ['user', 'assistant', 'tool', 'assistant']
    """
    msgs: list[dict[str, Any]] = []
    for it in items:
        msgs.append({"role": "user", "content": it["question"]})
        if use_tool:
            msgs += [ToolCall("calculator", {"expression": it["expression"]}).message(),
                     {"role": "tool", "name": "calculator", "content": str(it["answer"])}]
        msgs.append({"role": "assistant", "content": f"The answer is {it['answer']}."})
    return msgs


def first_number(text: str | None) -> float | None:
    """The first number in ``text`` (thousands separators allowed), or ``None``.

    >>> first_number("The answer is 1,234."), first_number("no idea")
    (1234.0, None)
    """
    if not text:
        return None
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?", text)
    return float(m.group(0).replace(",", "")) if m else None


def answer_is_correct(text: str | None, answer: float) -> bool:
    """Whether the first number of ``text`` equals ``answer``.

    >>> answer_is_correct("The answer is 5842.", 5842), answer_is_correct("It is 5800", 5842)
    (True, False)
    """
    value = first_number(text)
    return value is not None and abs(value - answer) < 1e-6
