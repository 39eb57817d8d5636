"""Catastrophic forgetting on the encoder's original task: sentence similarity (paraphrase retrieval).

all-MiniLM-L6-v2 was trained so that sentences with the same meaning have nearby mean-pooled
embeddings. Fine-tuning it for sentiment can pull the embeddings towards "positive vs negative"
and away from meaning. We measure that with paraphrase pairs written for the course (six per review
domain, positive and negative, so a sentence's distractors share its domain and often its
sentiment): for each first sentence, rank all second sentences by cosine similarity; recall@1 is
how often its own paraphrase comes first, MRR the mean reciprocal rank of it.

>>> pairs = paraphrase_pairs(); len(pairs), len(set(d for _, _, d in pairs))
(48, 8)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PARAPHRASES", "paraphrase_pairs", "embed_texts", "paraphrase_retrieval", "similarity_eval"]

# (sentence, paraphrase, domain); written for the course, not taken from the review set.
PARAPHRASES: tuple[tuple[str, str, str], ...] = (
    ("The flight left on time and landed early.", "We departed punctually and arrived ahead of schedule.", "airline"),
    ("They lost my suitcase and never called me back.", "My luggage went missing and nobody ever followed up.", "airline"),
    ("The seats were so cramped my knees hurt for hours.", "There was so little legroom that my legs ached long after.", "airline"),
    ("The cabin crew were warm and attentive the whole way.", "Flight attendants were friendly and caring throughout the trip.", "airline"),
    ("Our connection was cancelled without any explanation.", "The connecting flight was scrapped and no reason was given.", "airline"),
    ("Boarding was quick because they called groups in order.", "Getting on the plane was fast since rows were called one by one.", "airline"),
    ("I could not put this novel down until the last page.", "This book kept me reading all the way to the end.", "book"),
    ("The plot drags and the characters are flat.", "The story moves slowly and nobody in it feels real.", "book"),
    ("The translation is clumsy and full of errors.", "The translated text reads awkwardly and has many mistakes.", "book"),
    ("Her writing is clear and beautifully paced.", "The prose is lucid and has a lovely rhythm.", "book"),
    ("The ending felt rushed, as if the author ran out of time.", "The final chapters seemed hurried, like the writer had a deadline.", "book"),
    ("A great gift for anyone who loves history.", "History fans would be delighted to receive this one.", "book"),
    ("The jacket shrank two sizes after one wash.", "After a single wash the coat was two sizes smaller.", "clothing"),
    ("These jeans fit perfectly and feel soft.", "The trousers fit just right and the fabric is comfortable.", "clothing"),
    ("The stitching came apart within a week.", "The seams split open after only a few days.", "clothing"),
    ("The colour is exactly as shown in the photos.", "The shade matches the pictures on the website precisely.", "clothing"),
    ("The shoes gave me blisters on the first walk.", "My feet were sore and blistered after wearing them once.", "clothing"),
    ("Great quality for the price, I bought three more.", "Excellent value for money, so I ordered another three.", "clothing"),
    ("The battery lasts two full days of heavy use.", "With a lot of use the charge still holds for forty-eight hours.", "electronics"),
    ("The screen cracked when it slipped off the table.", "The display broke after falling from the desk.", "electronics"),
    ("Setup took five minutes and everything just worked.", "Installation was done in minutes without any problems.", "electronics"),
    ("The speaker crackles at any volume above half.", "Past the midpoint of the volume the sound distorts.", "electronics"),
    ("It overheats and shuts down during video calls.", "The device gets too hot and turns itself off while I am on video chats.", "electronics"),
    ("The headphones block out almost all background noise.", "These earphones cancel nearly every outside sound.", "electronics"),
    ("The room was spotless and the bed was comfortable.", "Our room was very clean and the mattress was great.", "hotel"),
    ("Reception kept us waiting an hour to check in.", "We stood at the front desk for sixty minutes before getting our keys.", "hotel"),
    ("The view of the harbour from our balcony was stunning.", "From the balcony we had a breathtaking look over the port.", "hotel"),
    ("The walls were so thin we heard every conversation next door.", "We could hear our neighbours talking through the paper-thin walls.", "hotel"),
    ("Breakfast was included and had plenty of choice.", "The free morning buffet offered a wide selection.", "hotel"),
    ("The air conditioning was broken and nobody fixed it.", "Our cooling did not work and staff never repaired it.", "hotel"),
    ("The acting was superb and the score gave me chills.", "The performances were excellent and the music was moving.", "movie"),
    ("I checked my watch every ten minutes.", "It was so dull I kept looking at the time.", "movie"),
    ("The special effects look cheap and dated.", "The visual effects seem low-budget and old-fashioned.", "movie"),
    ("The twist at the end surprised the whole theatre.", "Nobody in the cinema saw the final reveal coming.", "movie"),
    ("Too long by at least forty minutes.", "It should have been cut by well over half an hour.", "movie"),
    ("A charming film the whole family can enjoy.", "A delightful movie for parents and kids alike.", "movie"),
    ("The pasta was fresh and the sauce was rich.", "The noodles were homemade and the sauce was full of flavour.", "restaurant"),
    ("We waited forty minutes for cold food.", "Our meal took ages to arrive and was lukewarm.", "restaurant"),
    ("The waiter was rude when we asked for the bill.", "Our server was impolite when we requested the check.", "restaurant"),
    ("Portions are generous and prices are fair.", "You get a lot of food for a reasonable price.", "restaurant"),
    ("The soup was far too salty to finish.", "There was so much salt in the soup I could not eat it.", "restaurant"),
    ("Book ahead, it is always full on weekends.", "Reserve a table in advance because Saturdays and Sundays are packed.", "restaurant"),
    ("The app crashes every time I try to save a file.", "Whenever I save a document the program quits.", "software"),
    ("The new update made everything noticeably faster.", "Since the latest version, the program runs much quicker.", "software"),
    ("Customer support answered my ticket within an hour.", "The help desk replied to my request in under sixty minutes.", "software"),
    ("The interface is confusing and the menus are hidden.", "The layout is hard to understand and options are buried.", "software"),
    ("It synced my files across all devices without a hitch.", "My documents stayed in sync on every device with no trouble.", "software"),
    ("The subscription price doubled with no new features.", "They charged twice as much per month but added nothing.", "software"),
)


def paraphrase_pairs() -> list[tuple[str, str, str]]:
    """The course's paraphrase pairs ``(sentence, paraphrase, domain)``.

    >>> paraphrase_pairs()[0][2]
    'airline'
    """
    return list(PARAPHRASES)


def _encoder_and_pool(model: nn.Module):
    if hasattr(model, "embed") and callable(model.embed):
        return model.embed
    from tutorlib.models import mean_pool

    def embed(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return mean_pool(model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, attention_mask)

    return embed


@torch.no_grad()
def embed_texts(model: nn.Module, tokenizer: Any, texts: Sequence[str], batch_size: int = 64, max_length: int = 64,
                device: torch.device | str | None = None, normalize: bool = True, progress: bool = False) -> torch.Tensor:
    """Mean-pooled (optionally L2-normalised) sentence embeddings (N, H) on the CPU, computed in eval mode.

    ``model`` is a bare encoder (``load_encoder()``) or anything with ``.embed(ids, mask)``
    (``MiniLMClassifier``, ``MultiTaskModel``). Its train/eval mode is restored afterwards.

    >>> from tutorlib.models import load_encoder, load_tokenizer
    >>> embed_texts(load_encoder(), load_tokenizer(), ["hello", "hi there"]).shape
    torch.Size([2, 384])
    """
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts must be a non-empty list of strings")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    embed = _encoder_and_pool(model)
    was_training = model.training
    model.eval()
    chunks = []
    starts = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="embedding", leave=False)
    try:
        for i in starts:
            enc = tokenizer(list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            z = embed(enc["input_ids"].to(dev), enc["attention_mask"].to(dev)).float()
            chunks.append((F.normalize(z, dim=-1) if normalize else z).cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def paraphrase_retrieval(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Retrieval of ``b[i]`` for query ``a[i]`` among all rows of ``b`` by cosine similarity.

    Returns ``recall_at_1``, ``mrr`` (mean reciprocal rank), ``pos_cos`` (mean similarity of true
    pairs), ``neg_cos`` (mean similarity of all other pairs) and ``gap`` (their difference).

    >>> e = torch.eye(3); paraphrase_retrieval(e, e)["recall_at_1"]
    1.0
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"expected two (N, H) embedding matrices of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(a) < 2:
        raise ValueError("need at least two pairs to rank")
    sims = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T
    pos = sims.diag()
    ranks = (sims > pos[:, None]).sum(1) + 1
    off = ~torch.eye(len(a), dtype=torch.bool)
    return {"recall_at_1": float((ranks == 1).float().mean()), "mrr": float((1.0 / ranks.float()).mean()),
            "pos_cos": float(pos.mean()), "neg_cos": float(sims[off].mean()),
            "gap": float(pos.mean() - sims[off].mean())}


def similarity_eval(model: nn.Module, tokenizer: Any, pairs: Sequence[tuple[str, str, str]] | None = None,
                    device: torch.device | str | None = None) -> dict[str, float]:
    """Paraphrase retrieval of ``model`` on the course's pairs (or ``pairs``): see :func:`paraphrase_retrieval`.

    >>> from tutorlib.models import load_encoder, load_tokenizer
    >>> similarity_eval(load_encoder(), load_tokenizer())["recall_at_1"] > 0.8
    True
    """
    pairs = list(pairs) if pairs is not None else paraphrase_pairs()
    a = embed_texts(model, tokenizer, [p[0] for p in pairs], device=device)
    b = embed_texts(model, tokenizer, [p[1] for p in pairs], device=device)
    return paraphrase_retrieval(a, b)
