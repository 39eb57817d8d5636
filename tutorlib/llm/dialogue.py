"""Dialogue: a chat loop that keeps its prompt within a token budget, and a long-term memory in SQLite.

:class:`ChatSession` holds the turns of a conversation and builds each prompt so that it fits in
``max_tokens``: the newest turns are kept verbatim, older ones are either dropped (``"truncate"``)
or folded into a running summary (``"summarize"``). :class:`LongTermMemory` stores every turn with
its embedding in a SQLite file and recalls the turns most similar to a query (cosine similarity of
MiniLM sentence embeddings by default); a session with a memory adds the recalled turns to its prompt.
Any ``respond(prompt) -> str`` function can answer: the tiny GPT, or a real chat model through
:func:`hf_responder`.

>>> mem = LongTermMemory(embed=bag_of_words_embedder())
>>> _ = mem.add("user", "my cat is called Miso"); _ = mem.add("user", "I work on compilers")
>>> mem.recall("what is my cat's name?", k=1)[0].text
'my cat is called Miso'
>>> chat = ChatSession(lambda prompt: "ok", max_tokens=40, count_tokens=lambda s: len(s.split()))
>>> for i in range(10): _ = chat.send(f"message number {i} with some words")
>>> chat.count_tokens(chat.last_prompt) <= 40
True
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from tutorlib.retrieval import cosine_top_k

__all__ = ["Turn", "Memory", "LongTermMemory", "minilm_embedder", "bag_of_words_embedder",
           "first_sentence_summary", "ChatSession", "gpt_responder", "hf_responder", "STRATEGIES"]

STRATEGIES = ("truncate", "summarize")


@dataclass
class Turn:
    """One message of a conversation.

    >>> Turn("user", "hi").render()
    'User: hi'
    """

    role: str
    text: str

    def render(self) -> str:
        return f"{self.role.capitalize()}: {self.text}"


@dataclass
class Memory:
    """A recalled turn: its text, role, cosine similarity to the query and row id."""

    text: str
    role: str
    score: float
    id: int


def bag_of_words_embedder(dim: int = 256) -> Callable[[Sequence[str]], np.ndarray]:
    """A dependency-free embedder: hashed counts of lower-cased words (stems of 4+ letters cut to 5).

    Good enough to test a memory; :func:`minilm_embedder` understands meaning, not just shared words.

    >>> bag_of_words_embedder(8)(["a cat", "cats"]).shape
    (2, 8)
    """
    def embed(texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                w = w[:5] if len(w) >= 4 else w
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % dim] += 1.0
        return out
    return embed


def minilm_embedder(device: str | torch.device | None = None, batch_size: int = 32) -> Callable[[Sequence[str]], np.ndarray]:
    """Sentence embeddings of the bundled all-MiniLM-L6-v2 (mean pooling, L2-normalised), as a function.

    >>> emb = minilm_embedder(); emb(["hello there"]).shape
    (1, 384)
    """
    from tutorlib.models import load_encoder, load_tokenizer, mean_pool
    from tutorlib.runtime import get_device

    dev = get_device(device)
    tok, enc = load_tokenizer(), load_encoder().to(dev).eval()

    @torch.no_grad()
    def embed(texts: Sequence[str]) -> np.ndarray:
        chunks = []
        for i in range(0, len(texts), batch_size):
            batch = tok(list(texts[i:i + batch_size]), padding=True, truncation=True, max_length=128,
                        return_tensors="pt").to(dev)
            h = enc(**batch).last_hidden_state
            e = mean_pool(h, batch["attention_mask"])
            chunks.append(torch.nn.functional.normalize(e, dim=-1).cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 384), dtype=np.float32)
    return embed


class LongTermMemory:
    """Past turns in a SQLite database (``path``, or in memory), recalled by embedding similarity.

    Embeddings are stored as float32 blobs next to the text, so a memory file can be reopened later
    (with the same embedder).

    >>> m = LongTermMemory(embed=bag_of_words_embedder())
    >>> _ = m.add("user", "I am allergic to peanuts"); len(m)
    1
    """

    def __init__(self, path: str | Path = ":memory:", embed: Callable[[Sequence[str]], np.ndarray] | None = None) -> None:
        self.embed = embed or minilm_embedder()
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("CREATE TABLE IF NOT EXISTS turns (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, "
                        "role TEXT NOT NULL, text TEXT NOT NULL, dim INTEGER NOT NULL, embedding BLOB NOT NULL)")
        self.db.commit()

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM turns").fetchone()[0])

    def add(self, role: str, text: str) -> int:
        """Store one turn with its embedding; returns its row id."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a memory needs non-empty text")
        vec = np.asarray(self.embed([text]), dtype=np.float32)[0]
        cur = self.db.execute("INSERT INTO turns (ts, role, text, dim, embedding) VALUES (?, ?, ?, ?, ?)",
                              (time.time(), role, text, int(vec.shape[0]), vec.tobytes()))
        self.db.commit()
        return int(cur.lastrowid)

    def all(self) -> list[tuple[int, str, str]]:
        """Every stored ``(id, role, text)``, oldest first."""
        return list(self.db.execute("SELECT id, role, text FROM turns ORDER BY id"))

    def recall(self, query: str, k: int = 3, min_score: float = -1.0, exclude_last: int = 0) -> list[Memory]:
        """The ``k`` stored turns most similar to ``query`` (cosine), best first, above ``min_score``.

        ``exclude_last`` skips the newest rows (those already in the prompt verbatim).
        """
        rows = list(self.db.execute("SELECT id, role, text, dim, embedding FROM turns ORDER BY id"))
        if exclude_last:
            rows = rows[:-exclude_last] if exclude_last < len(rows) else []
        if not rows:
            return []
        keys = torch.from_numpy(np.stack([np.frombuffer(r[4], dtype=np.float32, count=r[3]) for r in rows]))
        q = torch.from_numpy(np.asarray(self.embed([query]), dtype=np.float32)[0])
        if q.shape[0] != keys.shape[1]:
            raise ValueError(f"the query embedding has {q.shape[0]} values but stored ones have {keys.shape[1]}: "
                             "reopen the memory with the embedder that wrote it")
        scores, idx = cosine_top_k(q, keys, k)
        return [Memory(rows[i][2], rows[i][1], float(s), int(rows[i][0]))
                for s, i in zip(scores.tolist(), idx.tolist()) if s >= min_score]

    def close(self) -> None:
        self.db.close()


def first_sentence_summary(turns: Sequence[Turn], max_words: int = 12) -> str:
    """An extractive summary: the first sentence of each turn, cut to ``max_words`` words.

    >>> first_sentence_summary([Turn("user", "I live in Lyon. It rains."), Turn("assistant", "Noted!")])
    'user said: I live in Lyon. assistant said: Noted!'
    """
    parts = []
    for t in turns:
        sentence = re.split(r"(?<=[.!?])\s", t.text.strip(), maxsplit=1)[0]
        words = sentence.split()
        parts.append(f"{t.role} said: {' '.join(words[:max_words])}{' …' if len(words) > max_words else ''}")
    return " ".join(parts)


@dataclass
class ChatSession:
    """A conversation whose prompts fit in ``max_tokens`` (counted by ``count_tokens``).

    Each :meth:`send` adds the user's message, builds the prompt (system text, summary of the
    dropped turns when ``strategy="summarize"``, recalled memories, the newest turns that fit, and
    ``"Assistant:"``), calls ``respond(prompt)`` and stores the reply.

    >>> s = ChatSession(lambda p: "hello!", max_tokens=100, count_tokens=len)
    >>> s.send("hi"), s.turns[-1].render()
    ('hello!', 'Assistant: hello!')
    """

    respond: Callable[[str], str]
    max_tokens: int = 256
    count_tokens: Callable[[str], int] = len
    strategy: str = "summarize"
    system: str = ""
    summarize: Callable[[Sequence[Turn]], str] = first_sentence_summary
    memory: LongTermMemory | None = None
    recall_k: int = 2
    reply_tokens: int = 0
    turns: list[Turn] = field(default_factory=list)
    summary: str = ""
    n_summarized: int = 0
    last_prompt: str = ""
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")

    def _compose(self, header: list[str], kept: Sequence[Turn]) -> str:
        return "\n".join([*header, *(t.render() for t in kept), "Assistant:"])

    def build_prompt(self) -> str:
        """The prompt for the next reply, within ``max_tokens - reply_tokens`` tokens."""
        budget = self.max_tokens - self.reply_tokens
        header = [self.system] if self.system else []
        if self.memory is not None and self.turns and len(self.memory):
            recalled = self.memory.recall(self.turns[-1].text, self.recall_k, exclude_last=1)
            # only turns no longer in the prompt verbatim are worth recalling
            visible = {t.text for t in self.turns[-4:]}
            notes = [m.text for m in recalled if m.text not in visible]
            if notes:
                header.append("Relevant earlier notes: " + " | ".join(notes))
        start = self.n_summarized if self.strategy == "summarize" else 0
        while True:
            kept = self.turns[start:]
            summary_line = [f"Summary of earlier conversation: {self.summary}"] if self.summary else []
            prompt = self._compose(header + summary_line, kept)
            if self.count_tokens(prompt) <= budget or len(kept) <= 1:
                break
            start += 1
            if self.strategy == "summarize":  # fold the oldest kept turn into the summary
                self.summary = self.summarize(self.turns[self.n_summarized:start]) if not self.summary else \
                    self.summary + " " + self.summarize(self.turns[start - 1:start])
                self.n_summarized = start
                while self.count_tokens(self.summary) > budget // 2 and " " in self.summary:  # keep the newest part
                    self.summary = "… " + self.summary.split(" ", 8)[-1] if self.summary.count(" ") > 8 else ""
        if self.count_tokens(prompt) > budget:  # even one turn is too long: keep its end
            while self.count_tokens(prompt) > budget and len(prompt) > 1:
                prompt = prompt[len(prompt) // 8 or 1:]
        self.log.append({"turns": len(self.turns), "kept": len(self.turns) - start,
                         "summarized": self.n_summarized, "tokens": self.count_tokens(prompt)})
        return prompt

    def send(self, message: str) -> str:
        """Add the user's ``message``, answer it, remember both turns; returns the reply."""
        if not isinstance(message, str) or not message.strip():
            raise ValueError("the message is empty")
        self.turns.append(Turn("user", message))
        if self.memory is not None:
            self.memory.add("user", message)
        self.last_prompt = self.build_prompt()
        reply = self.respond(self.last_prompt).strip()
        self.turns.append(Turn("assistant", reply))
        if self.memory is not None and reply:
            self.memory.add("assistant", reply)
        return reply


def gpt_responder(model: Any, max_new_tokens: int = 60, temperature: float = 0.8, top_k: int | None = 20,
                  seed: int = 0) -> Callable[[str], str]:
    """``respond(prompt)`` for a TinyGPT: sample a continuation and keep its first non-empty line.

    >>> from tutorlib.models import TinyGPT, GPTConfig
    >>> isinstance(gpt_responder(TinyGPT(GPTConfig(n_layer=1, d_model=16, n_head=2)), 5)("User: hi\\nAssistant:"), str)
    True
    """
    from tutorlib.llm.decoding import sample
    from tutorlib.models import ByteTokenizer

    tok = ByteTokenizer()

    def respond(prompt: str) -> str:
        dev = next(model.parameters()).device
        g = torch.Generator(device=dev).manual_seed(seed)
        ids = torch.tensor([tok.encode(prompt)], device=dev)
        out = sample(model, ids, max_new_tokens, temperature=temperature, top_k=top_k, generator=g)
        text = tok.decode(out[0, ids.shape[1]:]).strip()
        return text.split("\n")[0].strip()
    return respond


def hf_responder(model: Any, tokenizer: Any, max_new_tokens: int = 128, **generate_kwargs: Any) -> Callable[[str], str]:
    """``respond(prompt)`` for a Hugging Face causal LM (a real chat model works: the prompt goes in as one
    user message through its chat template when it has one).

    >>> callable(hf_responder(None, None))
    True
    """
    def respond(prompt: str) -> str:
        if getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)["input_ids"]
        else:
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        ids = ids.to(model.device)
        # an explicit mask: SmolLM2's pad token is <|im_end|>, which every chat prompt contains, and without a
        # mask generate would treat those positions as padding and drift from the model's own greedy choice
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id, **generate_kwargs)
        return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    return respond
