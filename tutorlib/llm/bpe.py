"""Byte-level byte-pair encoding (BPE) from scratch: the tokenizer family of GPT-2, Llama 3 and SmolLM2.

Text is first UTF-8 encoded, so the 256 byte values are the starting vocabulary and *any* Unicode text
(Chinese, emoji, accents) can be encoded with no unknown token. Training repeatedly finds the most frequent
adjacent pair of ids and merges it into a new id, until the vocabulary has ``vocab_size`` entries. Encoding
applies the learned merges in the order they were learned. A simple regex first splits the text into
chunks (words with their leading space, numbers, punctuation runs, spaces) so merges never cross a chunk.

>>> tok = BPETokenizer.train("low lower lowest " * 20, vocab_size=262)       # 6 merges
>>> tok.token_strings(tok.encode("low lower lowest"))
['low', ' lower', ' lowes', 't']
>>> tok.decode(tok.encode("lowest 最低 🙂")) == "lowest 最低 🙂"
True
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

__all__ = ["SPLIT_PATTERN", "pair_counts", "merge_pair", "BPETokenizer", "train_bpe"]

#: GPT-2-style pre-split with the standard ``re`` module: contractions, words with an optional leading
#: space, numbers, punctuation runs, whitespace (a run of spaces before a word leaves its last space to it).
SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+"""


def pair_counts(ids: list[int], counts: dict[tuple[int, int], int] | None = None) -> dict[tuple[int, int], int]:
    """How often each adjacent pair of ids occurs (added to ``counts`` if given).

    >>> pair_counts([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, left to right, without overlaps.

    >>> merge_pair([1, 2, 3, 1, 2], (1, 2), 9)
    [9, 3, 9]
    >>> merge_pair([1, 1, 1], (1, 1), 9)
    [9, 1]
    """
    out, i, n = [], 0, len(ids)
    a, b = pair
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    """A byte-level BPE tokenizer: ``merges`` ((a, b) -> new id, in learned order) and ``vocab`` (id -> bytes).

    Build one with :meth:`train` (or :func:`train_bpe`), or from a ``merges`` dict. ``encode(text)`` -> ids,
    ``decode(ids)`` -> text (exact round trip for any Unicode text), ``token_strings(ids)`` -> one readable
    string per token (bytes that are only part of a character are shown as ``\\xNN``).

    >>> tok = BPETokenizer({(104, 105): 256})                     # one merge: "h" + "i" -> 256
    >>> tok.encode("hi hi"), tok.vocab[256], tok.vocab_size
    ([256, 32, 256], b'hi', 257)
    """

    def __init__(self, merges: dict[tuple[int, int], int] | None = None, pattern: str | None = SPLIT_PATTERN) -> None:
        self.merges: dict[tuple[int, int], int] = dict(merges or {})
        self.pattern = pattern
        self._split = re.compile(pattern) if pattern else None
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for (a, b), new in self.merges.items():
            if a not in self.vocab or b not in self.vocab:
                raise ValueError(f"merge {(a, b)} -> {new} uses an id not defined by an earlier merge")
            self.vocab[new] = self.vocab[a] + self.vocab[b]
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def chunks(self, text: str) -> list[str]:
        """The pre-split pieces of ``text`` (merges never cross them).

        >>> BPETokenizer().chunks("def f(x): return x+1")
        ['def', ' f', '(', 'x', '):', ' return', ' x', '+', '1']
        """
        return self._split.findall(text) if self._split else [text]

    @classmethod
    def train(cls, text: str, vocab_size: int, progress: bool = False,
              pattern: str | None = SPLIT_PATTERN) -> "BPETokenizer":
        """Learn ``vocab_size - 256`` merges from ``text`` (most frequent adjacent pair first; ties: first seen).

        Pair counts are updated incrementally: after a merge only the chunks that contained the pair are
        recounted, so ~500 merges on ~200 KB of text take seconds.

        >>> tok = BPETokenizer.train("aaab aaab", vocab_size=257)
        >>> tok.merges                                             # "a" + "a" (97, 97) is the most frequent pair
        {(97, 97): 256}
        """
        if not isinstance(text, str) or not text:
            raise ValueError("train on a non-empty string")
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256 (the byte values), got {vocab_size}")
        tok = cls(pattern=pattern)
        chunk_freq = Counter(tok.chunks(text))
        words = [list(c.encode("utf-8")) for c in chunk_freq]
        freqs = list(chunk_freq.values())
        counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)
        for w, (ids, f) in enumerate(zip(words, freqs)):
            for pair in zip(ids, ids[1:]):
                counts[pair] += f
                where[pair].add(w)
        merges: dict[tuple[int, int], int] = {}
        for new_id in range(256, vocab_size):
            if not counts:
                break                                              # every chunk is a single token already
            pair = max(counts, key=counts.__getitem__)
            merges[pair] = new_id
            for w in where.pop(pair, ()):
                ids, f = words[w], freqs[w]
                for p in zip(ids, ids[1:]):                        # remove this chunk's old pairs
                    counts[p] -= f
                    if counts[p] <= 0:
                        del counts[p]
                    if p != pair:
                        where[p].discard(w)
                ids = words[w] = merge_pair(ids, pair, new_id)
                for p in zip(ids, ids[1:]):                        # add its new ones
                    counts[p] += f
                    where[p].add(w)
            counts.pop(pair, None)
            if progress and (new_id - 255) % 50 == 0:
                print(f"merge {new_id - 255}/{vocab_size - 256}: {pair} -> {new_id}")
        return cls(merges, pattern=pattern)

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            ranks = [self.merges.get(p) for p in zip(ids, ids[1:])]
            best = min((r for r in ranks if r is not None), default=None)
            if best is None:
                break
            i = ranks.index(best)
            ids = merge_pair(ids, (ids[i], ids[i + 1]), best)
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: its UTF-8 bytes, merged chunk by chunk in the learned order.

        >>> BPETokenizer().encode("é")                             # two UTF-8 bytes, no merges
        [195, 169]
        """
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        out: list[int] = []
        for chunk in self.chunks(text):
            ids = self._cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk)
                if len(self._cache) < 100_000:
                    self._cache[chunk] = ids
            out.extend(ids)
        return out

    def _bytes(self, ids: list[int]) -> bytes:
        try:
            return b"".join(self.vocab[int(i)] for i in ids)
        except KeyError as e:
            raise ValueError(f"unknown token id {e.args[0]}: ids must be in [0, {self.vocab_size})") from None

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids`` (invalid UTF-8, e.g. a cut-off character, becomes U+FFFD).

        >>> BPETokenizer().decode([72, 105])
        'Hi'
        """
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self._bytes(ids).decode("utf-8", errors="replace")

    def token_strings(self, ids: list[int]) -> list[str]:
        """One display string per token.

        >>> BPETokenizer().token_strings(BPETokenizer().encode("é!"))
        ['\\\\xc3', '\\\\xa9', '!']
        """
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return [self._bytes([i]).decode("utf-8", errors="backslashreplace") for i in ids]

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"


def train_bpe(text: str, vocab_size: int, progress: bool = False) -> BPETokenizer:
    """Same as :meth:`BPETokenizer.train`.

    >>> train_bpe("ab ab ab", 257).merges
    {(97, 98): 256}
    """
    return BPETokenizer.train(text, vocab_size, progress=progress)
