"""Machine translation with a small encoder–decoder Transformer and a decoder-only one, on a course-written
English→French parallel set, scored with chrF and BLEU against a word-by-word dictionary.

The original Transformer (Vaswani et al., 2017) was a translation model: an **encoder** reads the whole
source sentence with bidirectional attention, a **decoder** writes the target left to right, attending
to its own past (causal self-attention) and to the encoder's states (cross-attention). A
**decoder-only** model (GPT, Llama) does the same job with one stack: source, a separator, then the
target, all under one causal mask — the way today's LLMs translate.

The data (:func:`parallel_sentences`) comes from a small grammar written for the course: French puts
colour adjectives *after* the noun and size adjectives before it, makes determiners and adjectives
agree in gender and number, and elides ``le``/``la`` before a vowel (``l'oiseau``). A word-by-word
dictionary (:func:`dictionary_translate`) gets none of that right, which is what the models must learn.

>>> en, fr = parallel_sentences(1, seed=3)[0]
>>> len(en.split()) > 3 and fr.endswith(" .")
True
>>> round(chrf(["le chat noir"], ["le chat noir"]), 1), round(bleu(["le chat"], ["le chien"]), 1)
(100.0, 0.0)
"""

from __future__ import annotations

import math
import random
import warnings
from collections import Counter
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tutorlib.train import Trainer

__all__ = ["NOUNS", "HELD_OUT_PAIRS", "parallel_sentences", "LEXICON", "dictionary_translate", "WordVocab", "Seq2SeqTranslator",
           "DecoderOnlyTranslator", "train_translator", "translate", "chrf", "bleu"]

# english singular, english plural, french singular, french plural, gender
NOUNS = (("cat", "cats", "chat", "chats", "m"), ("dog", "dogs", "chien", "chiens", "m"),
         ("bird", "birds", "oiseau", "oiseaux", "m"), ("horse", "horses", "cheval", "chevaux", "m"),
         ("tree", "trees", "arbre", "arbres", "m"), ("boy", "boys", "garçon", "garçons", "m"),
         ("mouse", "mice", "souris", "souris", "f"), ("cow", "cows", "vache", "vaches", "f"),
         ("house", "houses", "maison", "maisons", "f"), ("car", "cars", "voiture", "voitures", "f"),
         ("flower", "flowers", "fleur", "fleurs", "f"), ("girl", "girls", "fille", "filles", "f"))
# colours follow the noun in French: english -> (m sg, f sg, m pl, f pl)
COLOURS = {"red": ("rouge", "rouge", "rouges", "rouges"), "black": ("noir", "noire", "noirs", "noires"),
           "green": ("vert", "verte", "verts", "vertes"), "white": ("blanc", "blanche", "blancs", "blanches"),
           "blue": ("bleu", "bleue", "bleus", "bleues")}
# sizes come before the noun, as in English
SIZES = {"big": ("grand", "grande", "grands", "grandes"), "small": ("petit", "petite", "petits", "petites")}
VERBS = {"sees": ("see", "voit", "voient"), "likes": ("like", "aime", "aiment"),
         "follows": ("follow", "suit", "suivent"), "watches": ("watch", "regarde", "regardent")}

#: The word-by-word dictionary of the baseline: every English word to one French form (masculine singular
#: for adjectives and determiners), as a bilingual word list would give it.
LEXICON: dict[str, str] = {"the": "le", "a": "un", "two": "deux", ".": ".",
                           **{n[0]: n[2] for n in NOUNS}, **{n[1]: n[3] for n in NOUNS},
                           **{e: f[0] for e, f in {**COLOURS, **SIZES}.items()},
                           **{e: f[1] for e, f in VERBS.items()}, **{f[0]: f[2] for f in VERBS.values()}}


def _phrase(rng: random.Random) -> tuple[list[str], list[str], bool]:
    en_sg, en_pl, fr_sg, fr_pl, gender = rng.choice(NOUNS)
    plural = rng.random() < 0.4
    det = "two" if plural and rng.random() < 0.5 else ("the" if plural or rng.random() < 0.6 else "a")
    size = rng.choice([None, None, *SIZES])
    colour = rng.choice([None, None, *COLOURS])
    form = (0 if gender == "m" else 1) + (2 if plural else 0)
    en = [det] + ([size] if size else []) + ([colour] if colour else []) + [en_pl if plural else en_sg]
    noun = fr_pl if plural else fr_sg
    fr_size = [SIZES[size][form]] if size else []
    first = (fr_size or [noun])[0]
    if det == "two":
        fr_det = "deux"
    elif det == "a":
        fr_det = "un" if gender == "m" else "une"
    elif plural:
        fr_det = "les"
    else:
        fr_det = "l'" if first[0] in "aeiouéè" else ("le" if gender == "m" else "la")
    fr = [fr_det] + fr_size + [noun] + ([COLOURS[colour][form]] if colour else [])
    return en, fr, plural


#: Adjective–noun pairs kept out of the training sentences, so the test can ask for combinations never seen.
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (("white", "cow"), ("green", "bird"), ("black", "flower"), ("blue", "horse"))


def _has_pair(english: str, pairs: Sequence[tuple[str, str]]) -> bool:
    words = english.split()
    nouns = {n[0]: n[0] for n in NOUNS} | {n[1]: n[0] for n in NOUNS}
    return any((a, nouns.get(b)) in pairs for a, b in zip(words, words[1:]))


def parallel_sentences(n: int, seed: int = 0, exclude: Sequence[tuple[str, str]] = (),
                       held_out: Sequence[tuple[str, str]] = (), unseen: bool = False) -> list[tuple[str, str]]:
    """``n`` distinct (English, French) sentence pairs "subject verb object ." from the course's grammar,
    none of them in ``exclude``. With ``held_out`` adjective–noun pairs (e.g. :data:`HELD_OUT_PAIRS`), the
    sentences avoid them all (``unseen=False``, for training) or each contains at least one (``unseen=True``,
    to test combinations the model never saw).

    >>> parallel_sentences(2, seed=0)
    [('the white cow sees two green cats .', 'la vache blanche voit deux chats verts .'), ('the white horses see the small boy .', 'les chevaux blancs voient le petit garçon .')]
    """
    rng = random.Random(f"translate-{seed}")
    taken = set(exclude)
    out: list[tuple[str, str]] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise ValueError(f"could not draw {n} new sentences: the grammar has run out of unseen ones")
        s_en, s_fr, plural = _phrase(rng)
        o_en, o_fr, _ = _phrase(rng)
        verb = rng.choice(list(VERBS))
        v_en = VERBS[verb][0] if plural else verb
        v_fr = VERBS[verb][2] if plural else VERBS[verb][1]
        pair = (" ".join(s_en + [v_en] + o_en + ["."]), " ".join(s_fr + [v_fr] + o_fr + ["."]))
        if held_out and _has_pair(pair[0], held_out) != unseen:
            continue
        if pair not in taken:
            taken.add(pair)
            out.append(pair)
    return out


def dictionary_translate(sentence: str, lexicon: dict[str, str] = LEXICON) -> str:
    """The baseline: each English word replaced by its dictionary entry, in English word order (unknown words
    are kept as they are).

    >>> dictionary_translate("the small red cars see a dog .")
    'le petit rouge voitures voient un chien .'
    """
    return " ".join(lexicon.get(w, w) for w in sentence.split())


class WordVocab:
    """Word-level vocabulary over whitespace tokens; ids 0–3 are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``.

    >>> v = WordVocab(["le chat .", "la vache ."])
    >>> v.decode(v.encode("le chat inconnu ."))
    'le chat <unk> .'
    """

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
    PAD, BOS, EOS, UNK = range(4)

    def __init__(self, sentences: Sequence[str]) -> None:
        words = sorted({w for s in sentences for w in s.split()})
        self.itos = list(self.SPECIALS) + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, sentence: str) -> list[int]:
        return [self.stoi.get(w, self.UNK) for w in sentence.split()]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.itos[i] for i in ids if i not in (self.PAD, self.BOS, self.EOS))


def _pad(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [WordVocab.PAD] * (width - len(r)) for r in rows])


def _causal(n: int, device: torch.device) -> torch.Tensor:
    return torch.triu(torch.ones(n, n, dtype=torch.bool, device=device), diagonal=1)  # True: may not attend


class Seq2SeqTranslator(nn.Module):
    """Encoder–decoder Transformer (``torch.nn.Transformer``) with one shared word embedding and learned positions.

    >>> m = Seq2SeqTranslator(20, d_model=16, heads=2, layers=1, ff=32)
    >>> m(torch.tensor([[4, 5, 2]]), torch.tensor([[1, 6]])).shape
    torch.Size([1, 2, 20])
    """

    def __init__(self, vocab_size: int, d_model: int = 64, heads: int = 4, layers: int = 2, ff: int = 128,
                 max_len: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=WordVocab.PAD)
        self.pos = nn.Embedding(max_len, d_model)
        self.core = nn.Transformer(d_model, heads, layers, layers, ff, dropout, batch_first=True)
        self.out = nn.Linear(d_model, vocab_size)

    def _emb(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        if src.dim() != 2 or tgt_in.dim() != 2:
            raise ValueError(f"expected src and tgt_in of shape (B, T), got {tuple(src.shape)} and {tuple(tgt_in.shape)}")
        h = self.core(self._emb(src), self._emb(tgt_in), tgt_mask=_causal(tgt_in.shape[1], src.device),
                      src_key_padding_mask=src == WordVocab.PAD, tgt_key_padding_mask=tgt_in == WordVocab.PAD,
                      memory_key_padding_mask=src == WordVocab.PAD, tgt_is_causal=True)
        return self.out(h)

    def loss(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy on ``tgt`` (``<bos> … <eos>``), teacher forcing."""
        logits = self(src, tgt[:, :-1])
        return nn.functional.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=WordVocab.PAD)

    @torch.no_grad()
    def generate(self, src: torch.Tensor, max_new: int = 24) -> list[list[int]]:
        """Greedy decoding, one row per source sentence, stopping at ``<eos>``."""
        with warnings.catch_warnings():  # the encoder's inference fast path warns that nested tensors are a prototype
            warnings.filterwarnings("ignore", message=".*nested tensors.*")
            memory = self.core.encoder(self._emb(src), src_key_padding_mask=src == WordVocab.PAD)
        out = torch.full((len(src), 1), WordVocab.BOS, device=src.device)
        for _ in range(max_new):
            h = self.core.decoder(self._emb(out), memory, tgt_mask=_causal(out.shape[1], src.device), tgt_is_causal=True,
                                  memory_key_padding_mask=src == WordVocab.PAD)
            nxt = self.out(h[:, -1]).argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], 1)
            if bool((out == WordVocab.EOS).any(1).all()):
                break
        return [_until_eos(r[1:].tolist()) for r in out]


class DecoderOnlyTranslator(nn.Module):
    """One causal stack over ``source <bos> target <eos>``; the loss counts only the target's tokens.

    >>> m = DecoderOnlyTranslator(20, d_model=16, heads=2, layers=1, ff=32)
    >>> m(torch.tensor([[4, 5, 1, 6]])).shape
    torch.Size([1, 4, 20])
    """

    def __init__(self, vocab_size: int, d_model: int = 64, heads: int = 4, layers: int = 4, ff: int = 128,
                 max_len: int = 96, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=WordVocab.PAD)
        self.pos = nn.Embedding(max_len, d_model)
        block = nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True)
        self.stack = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"expected ids of shape (B, T), got {tuple(ids.shape)}: add a batch dimension with ids[None]")
        h = self.embed(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        h = self.stack(h, mask=_causal(ids.shape[1], ids.device), is_causal=True,
                       src_key_padding_mask=ids == WordVocab.PAD)
        return self.out(h)

    def loss(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy on the target part of ``source + target`` (source positions ignored)."""
        rows, targets = [], []
        for s, t in zip(src.tolist(), tgt.tolist()):
            s = [i for i in s if i != WordVocab.PAD]
            t = [i for i in t if i != WordVocab.PAD]
            rows.append(s + t)
            targets.append([WordVocab.PAD] * len(s) + t[1:] + [WordVocab.PAD])
        ids, labels = _pad(rows).to(src.device), _pad(targets).to(src.device)
        logits = self(ids)
        return nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=WordVocab.PAD)

    @torch.no_grad()
    def generate(self, src: torch.Tensor, max_new: int = 24) -> list[list[int]]:
        """Greedy decoding after ``source <bos>``, one sentence at a time (no padding inside the prompt)."""
        results = []
        for row in src.tolist():
            ids = torch.tensor([[i for i in row if i != WordVocab.PAD] + [WordVocab.BOS]], device=src.device)
            start = ids.shape[1]
            for _ in range(max_new):
                nxt = self(ids)[:, -1].argmax(-1, keepdim=True)
                ids = torch.cat([ids, nxt], 1)
                if int(nxt) == WordVocab.EOS:
                    break
            results.append(_until_eos(ids[0, start:].tolist()))
        return results


def _until_eos(ids: list[int]) -> list[int]:
    return ids[:ids.index(WordVocab.EOS)] if WordVocab.EOS in ids else ids


def _tensors(pairs: Sequence[tuple[str, str]], vocab: WordVocab) -> tuple[torch.Tensor, torch.Tensor]:
    src = _pad([vocab.encode(en) for en, _ in pairs])
    tgt = _pad([[WordVocab.BOS] + vocab.encode(fr) + [WordVocab.EOS] for _, fr in pairs])
    return src, tgt


def train_translator(model: nn.Module, pairs: Sequence[tuple[str, str]], vocab: WordVocab, *, epochs: int = 10,
                     lr: float = 2e-3, batch_size: int = 64, seed: int = 0, device: str | torch.device = "cpu") -> list[float]:
    """Train either translator with AdamW (weight decay 0.01, learning rate decaying linearly to 0, gradient norm
    clipped at 1.0) on the course's :class:`~tutorlib.train.Trainer`; returns each epoch's mean loss. ``seed``
    fixes the batch order and the dropout.

    >>> pairs = parallel_sentences(32)
    >>> vocab = WordVocab([s for p in pairs for s in p])
    >>> m = Seq2SeqTranslator(len(vocab), d_model=16, heads=2, layers=1, ff=32)
    >>> losses = train_translator(m, pairs, vocab, epochs=3, lr=1e-2)
    >>> losses[-1] < losses[0]
    True
    """
    if not pairs:
        raise ValueError("no sentence pairs to train on: pass a non-empty list of (source, target) strings")
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)  # dropout
    trainer = Trainer(model, lr=lr, weight_decay=0.01, device=device, batch_size=batch_size, seed=seed,
                      clip_grad_norm=1.0, collate_fn=_trimmed_pairs,
                      step_fn=lambda t, batch: {"loss": t.unwrapped_model.loss(*batch)},
                      scheduler=lambda opt, total: get_linear_schedule_with_warmup(opt, 0, total),
                      progress=False, log=False)
    losses = trainer.fit(TensorDataset(*_tensors(pairs, vocab)), epochs=epochs)["train_loss"]
    model.eval()
    return losses


def _trimmed_pairs(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate ``(source, target)`` rows into two batches, each cut to its longest row (padding columns dropped)."""
    src, tgt = (torch.stack(column) for column in zip(*items))
    return src[:, :int((src != WordVocab.PAD).sum(1).max())], tgt[:, :int((tgt != WordVocab.PAD).sum(1).max())]


def translate(model: nn.Module, sentences: Sequence[str], vocab: WordVocab, batch_size: int = 128,
              device: str | torch.device = "cpu") -> list[str]:
    """Greedy translations of ``sentences`` by either translator.

    >>> v = WordVocab(["le chat ."])
    >>> len(translate(Seq2SeqTranslator(len(v), d_model=16, heads=2, layers=1, ff=32), ["the cat ."], v))
    1
    """
    model.to(device).eval()
    out: list[str] = []
    for i in range(0, len(sentences), batch_size):
        src = _pad([vocab.encode(s) or [WordVocab.UNK] for s in sentences[i:i + batch_size]]).to(device)
        out += [vocab.decode(ids) for ids in model.generate(src)]
    return out


def _ngrams(items: Sequence, n: int) -> Counter:
    return Counter(tuple(items[i:i + n]) for i in range(len(items) - n + 1))


def chrf(hypotheses: Sequence[str], references: Sequence[str], max_n: int = 6, beta: float = 2.0) -> float:
    """Corpus chrF (Popović, 2015) as sacreBLEU computes it by default: character n-grams for n = 1..6 (spaces
    removed), precision and recall averaged over n from corpus totals, F-score with recall weighted β = 2;
    0–100.

    >>> round(chrf(["le chat rouge"], ["le chat rouge"]), 1), round(chrf(["le chat"], ["le chien noir"]), 1)
    (100.0, 18.8)
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses and {len(references)} references: pass one per sentence")
    match = [0] * max_n
    hyp_total = [0] * max_n
    ref_total = [0] * max_n
    for h, r in zip(hypotheses, references):
        hc, rc = h.replace(" ", ""), r.replace(" ", "")
        for n in range(1, max_n + 1):
            hn, rn = _ngrams(hc, n), _ngrams(rc, n)
            match[n - 1] += sum((hn & rn).values())
            hyp_total[n - 1] += sum(hn.values())
            ref_total[n - 1] += sum(rn.values())
    ps = [m / t for m, t in zip(match, hyp_total) if t]
    rs = [m / t for m, t in zip(match, ref_total) if t]
    p, r = (sum(ps) / len(ps) if ps else 0.0), (sum(rs) / len(rs) if rs else 0.0)
    if p + r == 0:
        return 0.0
    return 100 * (1 + beta**2) * p * r / (beta**2 * p + r)


def bleu(hypotheses: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    """Corpus BLEU (Papineni et al., 2002) on whitespace tokens: geometric mean of clipped 1..4-gram precisions
    times the brevity penalty, no smoothing; 0–100.

    >>> round(bleu(["le grand chat noir voit la vache ."], ["le grand chat noir voit la vache ."]), 1)
    100.0
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses and {len(references)} references: pass one per sentence")
    match = [0] * max_n
    total = [0] * max_n
    hyp_len = ref_len = 0
    for h, r in zip(hypotheses, references):
        hw, rw = h.split(), r.split()
        hyp_len, ref_len = hyp_len + len(hw), ref_len + len(rw)
        for n in range(1, max_n + 1):
            hn, rn = _ngrams(hw, n), _ngrams(rw, n)
            match[n - 1] += sum((hn & rn).values())
            total[n - 1] += sum(hn.values())
    if min(match) == 0 or hyp_len == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(match, total)) / max_n
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * bp * math.exp(log_p)
