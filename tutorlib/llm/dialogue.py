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
           "first_sentence_summary", "ChatSession", "gpt_responder", "hf_responder", "chat_responder",
           "chat_renderer", "token_counter", "recall_dialogues", "user_facts_summary", "recall_prompts",
           "recall_correct", "STRATEGIES"]

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
    render: Callable[[list[dict[str, str]]], str] | None = None
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
        if self.render is None:
            return "\n".join([*header, *(t.render() for t in kept), "Assistant:"])
        system = [{"role": "system", "content": "\n".join(header)}] if header else []
        return self.render(system + [{"role": t.role, "content": t.text} for t in kept])

    @classmethod
    def for_chat_model(cls, model: Any, tokenizer: Any, max_tokens: int = 512, reply_tokens: int = 64,
                       **kwargs: Any) -> "ChatSession":
        """A session for a real chat model: prompts go through the tokenizer's chat template and the budget
        counts real tokens (``max_tokens`` covers the prompt plus ``reply_tokens`` of answer).

        >>> from tutorlib.models import load_llm
        >>> model, tok = load_llm("smollm2")  # doctest: +SKIP
        >>> chat = ChatSession.for_chat_model(model, tok, max_tokens=256)  # doctest: +SKIP
        """
        return cls(chat_responder(model, tokenizer, max_new_tokens=reply_tokens), max_tokens=max_tokens,
                   count_tokens=token_counter(tokenizer), render=chat_renderer(tokenizer), reply_tokens=reply_tokens,
                   **kwargs)

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
                    " ".join(filter(None, [self.summary, self.summarize(self.turns[start - 1:start]).strip()]))
                self.n_summarized = start
                while self.count_tokens(self.summary) > budget // 2 and " " in self.summary:  # keep the newest part
                    self.summary = "… " + self.summary.split(" ", 8)[-1] if self.summary.count(" ") > 8 else ""
        if self.count_tokens(prompt) > budget and self.render is not None:  # chat format: shorten the turn's text
            header, last = [], Turn(kept[-1].role, kept[-1].text)
            while self.count_tokens(prompt) > budget and len(last.text) > 1:
                last.text = "… " + last.text[len(last.text) // 8 or 1:].lstrip("… ")
                prompt = self._compose(header, [last])
        if self.count_tokens(prompt) > budget:  # even one turn is too long: keep its end
            while self.count_tokens(prompt) > budget and len(prompt) > 1:
                prompt = prompt[len(prompt) // 8 or 1:]
        self.log.append({"turns": len(self.turns), "kept": len(self.turns) - start,
                         "summarized": self.n_summarized, "tokens": self.count_tokens(prompt)})
        return prompt

    def add(self, role: str, text: str) -> None:
        """Add a turn without asking the model (a scripted history, or a reply produced elsewhere).

        >>> s = ChatSession(lambda p: "?", count_tokens=len); s.add("user", "hi"); s.add("assistant", "hello")
        >>> [t.role for t in s.turns]
        ['user', 'assistant']
        """
        if role not in ("user", "assistant"):
            raise ValueError(f"role must be 'user' or 'assistant', got {role!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"the {role} turn is empty")
        self.turns.append(Turn(role, text))
        if self.memory is not None:
            self.memory.add(role, text)

    def send(self, message: str) -> str:
        """Add the user's ``message``, answer it, remember both turns; returns the reply."""
        if not isinstance(message, str) or not message.strip():
            raise ValueError("the message is empty")
        self.add("user", message)
        self.last_prompt = self.build_prompt()
        reply = self.respond(self.last_prompt).strip()
        if reply:
            self.add("assistant", reply)
        else:
            self.turns.append(Turn("assistant", reply))
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


def chat_renderer(tokenizer: Any) -> Callable[[list[dict[str, str]]], str]:
    """``render(messages) -> prompt text`` through the tokenizer's chat template, ending with the assistant's
    generation prompt.

    >>> class Tok:
    ...     def apply_chat_template(self, messages, tokenize, add_generation_prompt):
    ...         return "".join(m["role"][0] + ":" + m["content"] + ";" for m in messages) + "a:"
    >>> chat_renderer(Tok())([{"role": "user", "content": "hi"}])
    'u:hi;a:'
    """
    if not hasattr(tokenizer, "apply_chat_template"):
        raise TypeError(f"expected a tokenizer with a chat template, got {type(tokenizer).__name__}")

    def render(messages: list[dict[str, str]]) -> str:
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return render


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """``count(text) -> number of tokens`` of an already formatted prompt (no special tokens added).

    >>> from tutorlib.models import ByteTokenizer
    >>> class Tok:
    ...     def __call__(self, text, add_special_tokens=False):
    ...         return {"input_ids": ByteTokenizer().encode(text)}
    >>> token_counter(Tok())("héllo")
    6
    """
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return count


def chat_responder(model: Any, tokenizer: Any, max_new_tokens: int = 64, **generate_kwargs: Any) -> Callable[[str], str]:
    """``respond(prompt)`` for a prompt already rendered with the chat template (by :func:`chat_renderer`):
    greedy by default, with an attention mask, decoded without special tokens.

    >>> callable(chat_responder(None, None))
    True
    """
    def respond(prompt: str) -> str:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
        kw = {"do_sample": False, **generate_kwargs}
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                             else tokenizer.eos_token_id, **kw)
        return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
    return respond


_FACTS = [("My dog is called {v}.", "What is my dog called?", ["Rex", "Biscuit", "Luna", "Pepper", "Milo", "Nala"]),
          ("I live in {v}.", "Which city do I live in?", ["Lyon", "Porto", "Krakow", "Dublin", "Oslo", "Seville"]),
          ("I work as a {v}.", "What is my job?", ["nurse", "baker", "pilot", "plumber", "librarian", "dentist"]),
          ("My favourite colour is {v}.", "What is my favourite colour?", ["green", "purple", "orange", "yellow",
                                                                           "turquoise", "crimson"]),
          ("My sister is called {v}.", "What is my sister's name?", ["Juliette", "Amara", "Ingrid", "Sofia", "Mei",
                                                                     "Olga"]),
          ("I play the {v}.", "Which instrument do I play?", ["cello", "banjo", "trumpet", "violin", "harp", "drums"])]
_FILLER = [("Can you suggest a quick breakfast?", "Oatmeal with fruit is quick and filling."),
           ("How do I keep basil alive?", "Give it sun, water it often, and pinch off the flowers."),
           ("What is a good way to learn a language?", "Practise a little every day and speak with people."),
           ("Any tips for sleeping better?", "Keep a regular schedule and avoid screens before bed."),
           ("How long should I boil an egg?", "About nine minutes for a hard-boiled egg."),
           ("What should I pack for a hike?", "Water, snacks, a map, sun cream and a warm layer."),
           ("How can I make my code easier to read?", "Use clear names and keep functions short."),
           ("Why is the sky blue?", "Air scatters blue light more than red light."),
           ("What is a good stretch after running?", "Try a calf stretch and a hamstring stretch."),
           ("How do I clean a cast iron pan?", "Rinse it with hot water, dry it, and oil it lightly."),
           ("Can you recommend a board game?", "Ticket to Ride is easy to learn and fun."),
           ("How do I save money on groceries?", "Plan your meals and make a shopping list."),
           ("What is the capital of Canada?", "The capital of Canada is Ottawa."),
           ("How many legs does a spider have?", "A spider has eight legs."),
           ("Give me a tip for public speaking.", "Practise out loud and slow down."),
           ("What is a healthy snack?", "A handful of nuts or an apple.")]


def recall_dialogues(n: int = 8, n_facts: int = 3, n_filler: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    """Course-written conversations for a recall test: the user states ``n_facts`` personal facts, then
    ``n_filler`` unrelated exchanges follow, then each fact is asked about.

    Each item: ``turns`` (``(role, text)`` pairs of the scripted history) and ``questions``
    (``(question, answer)`` pairs; the answer is a word the reply must contain).

    >>> d = recall_dialogues(1, n_facts=2, n_filler=1, seed=0)[0]
    >>> len(d["turns"]), len(d["questions"])
    (6, 2)
    """
    if not 1 <= n_facts <= len(_FACTS) or not 0 <= n_filler <= len(_FILLER):
        raise ValueError(f"n_facts must be in 1..{len(_FACTS)} and n_filler in 0..{len(_FILLER)}, got "
                         f"{n_facts} and {n_filler}")
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        turns, questions = [], []
        for statement, question, values in rng.sample(_FACTS, n_facts):
            v = rng.choice(values)
            turns += [("user", statement.format(v=v)), ("assistant", "Thanks, I will remember that.")]
            questions.append((question, v))
        for user, reply in rng.sample(_FILLER, n_filler):
            turns += [("user", user), ("assistant", reply)]
        out.append({"turns": turns, "questions": questions})
    return out


def user_facts_summary(turns: Sequence[Turn], max_words: int = 10) -> str:
    """An extractive summary that keeps only what the user said (first sentence of each user turn): the
    assistant's replies rarely hold facts about the user.

    >>> user_facts_summary([Turn("user", "I live in Oslo. It is cold."), Turn("assistant", "Nice!")])
    'User: I live in Oslo.'
    """
    said = [re.split(r"(?<=[.!?])\s", t.text.strip(), maxsplit=1)[0] for t in turns if t.role == "user"]
    return " ".join(f"User: {' '.join(s.split()[:max_words])}" for s in said)


def recall_prompts(dialogues: Sequence[dict[str, Any]], strategy: str, max_tokens: int, count_tokens: Callable[[str], int],
                   render: Callable[[list[dict[str, str]]], str] | None = None, reply_tokens: int = 0,
                   embed: Callable[[Sequence[str]], np.ndarray] | None = None, recall_k: int = 2,
                   memory_dir: str | Path | None = None, system: str = "") -> list[tuple[str, str]]:
    """The prompt each recall question gets under ``strategy`` and its expected answer: ``(prompt, answer)``.

    ``"truncate"`` and ``"summarize"`` replay the history into a :class:`ChatSession` of ``max_tokens``;
    ``"memory"`` replays it into a first session writing a :class:`LongTermMemory` (a SQLite file under
    ``memory_dir``, or in memory), then asks each question in a *new* session (truncating) that reopens it
    and recalls ``recall_k`` turns. Every question is asked from the same history (the session is copied).

    >>> d = recall_dialogues(1, n_facts=1, n_filler=4, seed=0)
    >>> p, a = recall_prompts(d, "truncate", 30, lambda s: len(s.split()))[0]
    >>> a in p
    False
    """
    import copy

    if strategy not in (*STRATEGIES, "memory"):
        raise ValueError(f"unknown strategy {strategy!r}: use truncate, summarize or memory")
    out = []
    for i, d in enumerate(dialogues):
        kw = dict(max_tokens=max_tokens, count_tokens=count_tokens, render=render, reply_tokens=reply_tokens,
                  system=system)
        prompts: list[str] = []
        respond = lambda p: prompts.append(p) or ""  # noqa: E731 - records the prompt; answers come later in a batch
        if strategy == "memory":
            path = ":memory:" if memory_dir is None else Path(memory_dir) / f"dialogue{i}.sqlite"
            if path != ":memory:" and Path(path).exists():
                Path(path).unlink()
            mem = LongTermMemory(path, embed=embed or bag_of_words_embedder())
            first = ChatSession(respond, strategy="truncate", memory=mem, **kw)
            for role, text in d["turns"]:
                first.add(role, text)
            if path != ":memory:":  # a new session reads the memory back from disk
                mem.close()
                mem = LongTermMemory(path, embed=mem.embed)
            for q, a in d["questions"]:
                ChatSession(respond, strategy="truncate", memory=mem, recall_k=recall_k, **kw).send(q)
                out.append((prompts[-1], a))
            mem.close()
            continue
        session = ChatSession(respond, strategy=strategy, summarize=user_facts_summary, **kw)
        for role, text in d["turns"]:
            session.add(role, text)
        for q, a in d["questions"]:
            copy.deepcopy(session).send(q)
            out.append((prompts[-1], a))
    return out


def recall_correct(reply: str, answer: str) -> bool:
    """Whether ``reply`` contains ``answer`` as a whole word (case-insensitive).

    >>> recall_correct("Your dog is called Rex!", "rex"), recall_correct("Rexford", "Rex")
    (True, False)
    """
    return re.search(rf"\b{re.escape(answer.lower())}\b", reply.lower()) is not None
