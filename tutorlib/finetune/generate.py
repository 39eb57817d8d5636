"""Text generation with a causal LM for ``tutorlib generate``: one prompt streamed, a chat, or a whole file.

:class:`Generator` wraps :func:`tutorlib.models.load_llm` (the bundled SmolLM2 by default, a saved folder,
a ``tutorlib finetune --task causal-lm`` run with its adapter, or a hub id). Prompts are formatted with
the model's chat template unless ``raw``; batches are left-padded; every answer stops at the first
end-of-sequence token. :func:`read_prompts` reads CSV/TSV (a prompt column) or JSONL/JSON (a ``prompt``
key, or chat ``messages``) with the same clear errors as the training files.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "q.jsonl"
>>> _ = p.write_text('{"prompt": "Hi"}\\n{"messages": [{"role": "user", "content": "2+2?"}]}\\n')
>>> [(r.line, r.text) for r in read_prompts(p)]
[(1, 'Hi'), (2, '2+2?')]
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TextIO

import torch

__all__ = ["PromptRow", "read_prompts", "Generator", "answers_table"]

_ROLES = ("system", "user", "assistant")


@dataclass
class PromptRow:
    """One prompt of a file: its line, and either a plain ``prompt`` or chat ``messages``.

    >>> PromptRow(3, prompt="Hi").text, PromptRow(4, messages=[{"role": "user", "content": "Yo"}]).text
    ('Hi', 'Yo')
    """

    line: int
    prompt: str | None = None
    messages: list[dict[str, str]] | None = None

    @property
    def text(self) -> str:
        """The prompt, or the last user message of a chat."""
        if self.messages is None:
            return self.prompt or ""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else self.messages[-1]["content"]


def _check_messages(value: Any, path: Path, line: int) -> list[dict[str, str]]:
    example = '"messages": [{"role": "user", "content": "..."}]'
    if not isinstance(value, list) or not value:
        raise _error(f"{path}: line {line}: 'messages' must be a non-empty list like {example}")
    for i, m in enumerate(value, start=1):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise _error(f"{path}: line {line}: message {i} must be an object with string 'role' and 'content', "
                         f"like {example}")
        if m["role"] not in _ROLES:
            raise _error(f"{path}: line {line}: message {i} has role {m['role']!r}: use one of {', '.join(_ROLES)}")
    if value[-1]["role"] == "assistant":
        raise _error(f"{path}: line {line}: the last message is the assistant's: end each conversation with a user "
                     "message (the answer is what generate writes)")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _error(message: str) -> Exception:
    from tutorlib.finetune.io import DataFileError

    return DataFileError(message)


def _trained_system(model: str | Path) -> str | None:
    """The system message a ``tutorlib finetune`` run trained with (``--system``), so that generation
    formats prompts as training did; None for other models.

    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "tutorlib_model.json").write_text(json.dumps({"system": "Be brief."}))
    >>> _trained_system(d)
    'Be brief.'
    """
    meta = Path(model) / "tutorlib_model.json"
    try:
        value = json.loads(meta.read_text(encoding="utf-8")).get("system") if meta.is_file() else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None


def read_prompts(path: str | Path, prompt_col: str = "prompt", *, encoding: str = "utf-8-sig", fmt: str | None = None,
                 skip_empty: bool = False) -> list[PromptRow]:
    """Read the prompts of a CSV/TSV (column ``prompt_col``) or JSONL/JSON file (key ``prompt_col``, or ``messages``).

    Empty prompts raise a ``DataFileError`` naming the line, unless ``skip_empty``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "q.csv"
    >>> _ = p.write_text("question\\nWhat is 2+2?\\n")
    >>> read_prompts(p, "question")[0].prompt
    'What is 2+2?'
    """
    from tutorlib.finetune.io import _missing_column, _rows_csv, _rows_json, jsonl_objects, read_data_text

    path = Path(path)
    kind, text = read_data_text(path, fmt, encoding)
    if not text.strip():
        raise _error(f"{path} is empty: it needs one prompt per row")
    example = '{"%s": "..."} or {"messages": [{"role": "user", "content": "..."}]}' % prompt_col
    if kind in ("csv", "tsv"):
        columns, rows = _rows_csv(text, path, "," if kind == "csv" else "\t")
        if rows and prompt_col not in columns:
            raise _missing_column(path, "prompt", prompt_col, columns, "--prompt-col", text.splitlines()[0])
    elif kind == "jsonl":
        rows = list(jsonl_objects(text, path, example))
    else:
        rows = _rows_json(text, path)[1]
    if not rows:
        raise _error(f"{path} has no rows of data: add one prompt per line")
    out: list[PromptRow] = []
    for line, row in rows:
        if kind not in ("csv", "tsv") and "messages" in row and prompt_col not in row:
            out.append(PromptRow(line, messages=_check_messages(row["messages"], path, line)))
            continue
        if prompt_col not in row:
            has = ", ".join(repr(k) for k in row) or "no keys"
            raise _error(f"{path}: line {line} has no {prompt_col!r} key (it has {has}): every line needs {example} "
                         "(or pass --prompt-col with the key your file uses)")
        value = row[prompt_col]
        if value is not None and not isinstance(value, str):
            raise _error(f"{path}: line {line}: {prompt_col!r} is a {type(value).__name__}, expected text")
        if not (value or "").strip():
            if skip_empty:
                continue
            raise _error(f"{path}: line {line}: the prompt is empty: fill it in or delete the row "
                         "(or pass --skip-empty to drop such rows)")
        out.append(PromptRow(line, prompt=value))
    if not out:
        raise _error(f"{path}: every prompt is empty: nothing to answer")
    return out


class Generator:
    """A causal LM and its tokenizer ready to answer prompts (see :func:`tutorlib.models.load_llm` for ``model``).

    ``system``: a system message put before every prompt; ``raw``: feed prompts as they are, without the
    chat template (always the case for a tokenizer that has none).

    >>> gen = Generator("smollm2", device="cpu")  # doctest: +SKIP
    >>> gen.generate(["What is the capital of France?"], max_new_tokens=16)[0]["answer"]  # doctest: +SKIP
    'The capital of France is Paris.'
    """

    def __init__(self, model: str | Path = "smollm2", *, device: str | torch.device | None = None,
                 dtype: torch.dtype = torch.float32, system: str | None = None, raw: bool = False) -> None:
        from tutorlib.models import load_llm

        self.name = str(model)
        self.model, self.tokenizer = load_llm(model, dtype=dtype, device=device)
        self.device = next(self.model.parameters()).device
        self.system = system if system is not None else _trained_system(model)
        self.has_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.raw = raw or not self.has_template
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids: list[int] = sorted({int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])
                                          if e is not None} | ({int(self.tokenizer.eos_token_id)}
                                                               if self.tokenizer.eos_token_id is not None else set()))
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0))
        config = getattr(self.model, "config", None)
        self.context = int(getattr(config, "max_position_embeddings", 0) or getattr(config, "n_positions", 0) or 0)

    def messages(self, prompt: str | Sequence[dict[str, str]]) -> list[dict[str, str]]:
        """The chat messages for a prompt (with the system message, if any) or for a list of messages."""
        msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        if self.system and not any(m["role"] == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": self.system})
        return msgs

    def encode(self, prompt: str | Sequence[dict[str, str]]) -> list[int]:
        """Token ids of one prompt: the chat template applied (with the assistant turn opened), or raw text."""
        if self.raw:
            if not isinstance(prompt, str):
                if not self.has_template:
                    raise ValueError(f"the tokenizer of {self.name} has no chat template, so it cannot format chat "
                                     "'messages': give plain prompts, or use an instruction-tuned model like smollm2")
                raise ValueError("chat 'messages' need the chat template: drop --raw")
            return list(self.tokenizer(prompt)["input_ids"])
        from tutorlib.models import chat_input_ids

        return chat_input_ids(self.tokenizer, self.messages(prompt))[0].tolist()

    def _sampling(self, temperature: float, top_p: float) -> dict[str, Any]:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if temperature == 0:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {"do_sample": True, "temperature": float(temperature), "top_p": float(top_p), "top_k": 0}

    def _budget(self, prompt_len: int, max_new_tokens: int) -> int:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if self.context and prompt_len >= self.context:
            raise ValueError(f"the prompt has {prompt_len} tokens but {self.name} reads at most {self.context}: "
                             "shorten it")
        return min(max_new_tokens, self.context - prompt_len) if self.context else max_new_tokens

    def _cut(self, ids: list[int]) -> tuple[list[int], bool]:
        for i, t in enumerate(ids):
            if t in self.eos_ids:
                return ids[:i], True
        return ids, False

    @torch.no_grad()
    def generate(self, prompts: Sequence[str | Sequence[dict[str, str]]], max_new_tokens: int = 64,
                 temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 8,
                 seed: int | None = None) -> list[dict[str, Any]]:
        """Answer every prompt (a string or a list of chat messages), ``batch_size`` at a time, left-padded.

        Returns one dict per prompt: ``answer`` (text up to the first end-of-sequence token), ``new_tokens``
        (how many tokens it has) and ``finish_reason`` (``"eos"``, or ``"length"`` if ``max_new_tokens`` ran out).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        sampling = self._sampling(temperature, top_p)
        if seed is not None:
            torch.manual_seed(seed)
        encoded = [self.encode(p) for p in prompts]
        results: list[dict[str, Any]] = []
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start:start + batch_size]
            width = max(len(ids) for ids in batch)
            budget = self._budget(width, max_new_tokens)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, row in enumerate(batch):  # left padding: every prompt ends where generation starts
                ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
                mask[i, width - len(row):] = 1
            out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                      max_new_tokens=budget, eos_token_id=self.eos_ids or None,
                                      pad_token_id=self.pad_id, **sampling)
            for row in out[:, width:].tolist():
                kept, stopped = self._cut(row)
                results.append({"answer": self.tokenizer.decode(kept, skip_special_tokens=True).strip(),
                                "new_tokens": len(kept), "finish_reason": "eos" if stopped else "length"})
        return results

    @torch.no_grad()
    def stream(self, prompt: str | Sequence[dict[str, str]], max_new_tokens: int = 256, temperature: float = 0.0,
               top_p: float = 1.0, seed: int | None = None, file: TextIO | None = None) -> str:
        """Print the answer to ``prompt`` token by token as it is generated (to ``file``, default stdout); return it."""
        from transformers import TextStreamer

        sampling = self._sampling(temperature, top_p)
        if seed is not None:
            torch.manual_seed(seed)
        row = self.encode(prompt)
        budget = self._budget(len(row), max_new_tokens)
        out_file = file if file is not None else sys.stdout

        class _Streamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                out_file.write(text + ("\n" if stream_end else ""))
                out_file.flush()

        ids = torch.tensor([row], dtype=torch.long, device=self.device)
        out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=budget,
                                  eos_token_id=self.eos_ids or None, pad_token_id=self.pad_id,
                                  streamer=_Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True),
                                  **sampling)
        kept, _ = self._cut(out[0, ids.shape[1]:].tolist())
        return self.tokenizer.decode(kept, skip_special_tokens=True).strip()

    def fit_history(self, messages: list[dict[str, str]], max_new_tokens: int) -> list[dict[str, str]]:
        """Drop the oldest user/assistant turns (never the system message or the last message) until the chat
        and ``max_new_tokens`` fit in the model's context."""
        msgs = list(messages)
        while self.context and len(self.encode(msgs)) + max_new_tokens > self.context:
            first = next((i for i, m in enumerate(msgs[:-1]) if m["role"] != "system"), None)
            if first is None:
                break
            del msgs[first]
        return msgs


def answers_table(rows: Sequence[PromptRow], answers: Sequence[dict[str, Any]], fmt: str = "csv") -> str:
    """The answers as CSV (``line,prompt,answer,new_tokens,finish_reason``) or JSONL (with ``messages`` for chats).

    >>> print(answers_table([PromptRow(2, prompt="Hi")], [{"answer": "Hello", "new_tokens": 1, "finish_reason": "eos"}]), end="")
    line,prompt,answer,new_tokens,finish_reason
    2,Hi,Hello,1,eos
    """
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown output format {fmt!r}: use csv or jsonl")
    buf = io.StringIO()
    if fmt == "jsonl":
        for row, ans in zip(rows, answers):
            obj: dict[str, Any] = {"line": row.line}
            obj.update({"messages": row.messages} if row.messages is not None else {"prompt": row.prompt})
            obj.update(ans)
            buf.write(json.dumps(obj, ensure_ascii=False) + "\n")
        return buf.getvalue()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["line", "prompt", "answer", "new_tokens", "finish_reason"])
    for row, ans in zip(rows, answers):
        writer.writerow([row.line, row.text, ans["answer"], ans["new_tokens"], ans["finish_reason"]])
    return buf.getvalue()
