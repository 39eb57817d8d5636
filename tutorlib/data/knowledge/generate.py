"""Write the course's knowledge base: a handbook of the fictional island town of Quillhaven.

Run ``python -m tutorlib.data.knowledge.generate`` to rewrite ``documents.jsonl`` and ``questions.jsonl``
next to this file (deterministic: the same files every time). Every fact is drawn from invented name
lists by a seeded generator, so a language model cannot know it from pre-training: questions about
Quillhaven are answerable only from the documents. The rules are in ``DATASHEET.md``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
SEED = 12

KINDS = ["bakery", "bookshop", "bicycle workshop", "tea house", "pottery studio", "clockmaker", "boatyard",
         "herb garden", "music school", "fish smokery", "print shop", "candle maker"]
ADJ = ["Amber", "Brass", "Copper", "Drifting", "Ember", "Falcon", "Gilded", "Hollow", "Ivory", "Juniper", "Kestrel",
       "Lantern", "Marble", "Nettle", "Orchid", "Pewter", "Quartz", "Russet", "Saffron", "Thistle", "Umber",
       "Velvet", "Willow", "Yarrow", "Zephyr", "Cobalt", "Heron", "Moss", "Sable", "Tidal"]
NOUN = ["Anchor", "Barrel", "Compass", "Dove", "Feather", "Gate", "Harp", "Kettle", "Lamp", "Mill", "Needle",
        "Otter", "Pebble", "Quill", "Raven", "Spindle", "Thimble", "Wheel", "Wren", "Bell"]
FIRST = ["Ilsa", "Teodor", "Marit", "Osric", "Branwen", "Casimir", "Dagny", "Evander", "Fenna", "Gorven", "Hesper",
         "Ivo", "Jorunn", "Kestra", "Lorcan", "Maelis", "Nils", "Odalys", "Piet", "Rhosyn", "Sten", "Tamsin",
         "Ulmer", "Vesna", "Wystan", "Yselde", "Alaric", "Brisa", "Corwin", "Delphine"]
LAST = ["Brenwick", "Halloran", "Quist", "Vantreck", "Morrowby", "Ashgrove", "Pelliter", "Dunmore", "Fairweld",
        "Grindel", "Holtby", "Isenhart", "Kilbride", "Lathemore", "Merriweth", "Norcastle", "Ottendorf", "Pimbrook",
        "Ravensby", "Selwyn", "Tolliver", "Underhay", "Wexcombe", "Yarrowdale", "Carrick", "Elsmere", "Gallow",
        "Harrowgate", "Linfield", "Marchbank"]
STREETS = ["Tallow Street", "Gullwing Lane", "Cinder Row", "Saltmarsh Road", "Lantern Quay", "Bramble Hill",
           "Foundry Walk", "Oyster Steps", "Kelp Street", "Mariner's Close", "Weaver Lane", "Beacon Road",
           "Chapel Wynd", "Harbour Parade", "Millrace Lane", "Rope Walk"]
HOURS = ["6 am", "7 am", "8 am", "9 am", "10 am", "11 am", "noon"]
CLOSED = ["Monday", "Tuesday", "Wednesday", "Thursday", "Sunday"]
SPECIAL = {
    "bakery": ["seaweed rye loaves", "honey oat buns", "black pepper scones", "fig and walnut bread", "cardamom knots"],
    "bookshop": ["maps of the old shipwrecks", "signed island poetry", "second-hand atlases", "children's sea stories",
                 "hand-bound diaries"],
    "bicycle workshop": ["wooden-rim wheels", "folding cargo bikes", "tandem repairs", "brass bells", "rust-proof chains"],
    "tea house": ["smoked pine tea", "rose hip cordial", "barley milk tea", "nettle infusions", "salted caramel chai"],
    "pottery studio": ["blue glazed jugs", "ash-fired bowls", "speckled mugs", "seashell tiles", "raku vases"],
    "clockmaker": ["tide clocks", "pocket watches", "lighthouse chronometers", "cuckoo clocks", "sundials"],
    "boatyard": ["clinker dinghies", "oak rowing gigs", "sail repairs", "painted fishing skiffs", "kayak rentals"],
    "herb garden": ["lavender bundles", "sea fennel", "lemon thyme seedlings", "dried chamomile", "mint jelly"],
    "music school": ["fiddle lessons", "sea shanty choirs", "accordion classes", "harp workshops", "drum circles"],
    "fish smokery": ["oak-smoked mackerel", "kippered herring", "smoked eel pies", "peppered trout", "cured pollock"],
    "print shop": ["letterpress posters", "wedding invitations", "linocut calendars", "tide tables", "ferry tickets"],
    "candle maker": ["beeswax tapers", "driftwood lanterns", "bayberry candles", "storm candles", "scented tea lights"],
}
FILLER = [
    "The building was once a {old}, and the old sign still hangs above the door.",
    "Visitors often stop to watch the {animal} that nest on the roof.",
    "On rainy days the queue reaches the corner of the street.",
    "The walls are painted {colour} and covered with photographs of the harbour.",
    "A small garden at the back has benches for customers.",
    "Local children come by after school to help with small tasks.",
    "Every spring it takes part in the Quillhaven harbour fair.",
    "The owner keeps a logbook of every visitor who arrives by ferry.",
    "In winter a stove keeps the front room warm.",
    "A brass plaque by the entrance lists the names of past apprentices.",
    "Fishermen drop in at dawn before the boats go out.",
    "Its window displays change with the seasons.",
    "A {animal} carved in wood sits above the counter.",
    "The back room smells of tar and salt from the old {old}.",
]
OLD = ["customs house", "net loft", "chapel", "sail loft", "coal store", "stable", "signal station"]
ANIMAL = ["swallows", "gulls", "starlings", "pigeons", "terns"]
COLOUR = ["sea green", "ochre", "pale blue", "brick red", "cream", "slate grey"]


def _sentences(rng: random.Random, e: dict) -> list[tuple[str, str | None]]:
    """(sentence, fact it states or None) for one entity, in the document's order."""
    name = e["name"]
    intro = rng.choice([f"{name} is a {e['kind']} on {e['street']} in Quillhaven.",
                        f"On {e['street']} in Quillhaven stands {name}, a {e['kind']}."])
    founded = rng.choice([f"It was founded in {e['year']} by {e['founder']}.",
                          f"{e['founder']} opened it in {e['year']}.",
                          f"The founder, {e['founder']}, started it in {e['year']}."])
    hours = rng.choice([f"It opens at {e['opens']} every day except {e['closed']}.",
                        f"Its doors open at {e['opens']}, and it is closed on {e['closed']}."])
    special = rng.choice([f"It is best known for its {e['special']}.",
                          f"People come from across the island for its {e['special']}.",
                          f"Its most famous offering is {e['special']}."])
    fill = [f.format(old=rng.choice(OLD), animal=rng.choice(ANIMAL), colour=rng.choice(COLOUR))
            for f in rng.sample(FILLER, 3)]
    body = [(founded, "founded"), (hours, "hours"), (special, "special")]
    rng.shuffle(body)
    # facts with filler between them, so a short chunk does not hold a whole document
    return [(intro, "intro"), body[0], (fill[0], None), body[1], (fill[1], None), body[2], (fill[2], None)]


PHRASINGS = {
    "founder": ("Who founded {n}?", "Who opened {n}?", "Name the founder of {n}."),
    "year": ("In which year was {n} founded?", "When was {n} founded?"),
    "street": ("On which street is {n}?", "Where in Quillhaven is {n}?"),
    "opens": ("At what time does {n} open?", "When does {n} open?"),
    "closed": ("On which day is {n} closed?", "Which day does {n} not open?"),
    "special": ("What is {n} best known for?", "What do people come to {n} for?"),
}
FACT = {"founder": "founded", "year": "founded", "street": "intro", "opens": "hours", "closed": "hours",
        "special": "special"}
MAX_JACCARD = 0.5   # largest character-5-gram Jaccard of an evaluation question with any tune question


def char_ngrams(text: str, n: int = 5) -> set[str]:
    """Character ``n``-grams of the lower-cased text."""
    t = text.lower()
    return {t[i:i + n] for i in range(len(t) - n + 1)}


def jaccard(a: str, b: str, n: int = 5) -> float:
    """Jaccard similarity of the character ``n``-gram sets of two texts."""
    x, y = char_ngrams(a, n), char_ngrams(b, n)
    return len(x & y) / len(x | y) if x | y else 0.0


def _questions(rng: random.Random, e: dict, avoid: list[str]) -> list[dict]:
    """Three questions about entity ``e``; each phrasing is drawn among those whose character-5-gram Jaccard
    with every question in ``avoid`` (the tune split's) is at most ``MAX_JACCARD``."""
    n, out = e["name"], []
    for kind in rng.sample(sorted(PHRASINGS), 3):
        options = [p.format(n=n) for p in PHRASINGS[kind]]
        ok = [q for q in options if all(jaccard(q, a) <= MAX_JACCARD for a in avoid)]
        if not ok:
            raise RuntimeError(f"every phrasing of a {kind} question about {n} is too close to a tune question")
        answer = str(e["year"]) if kind == "year" else e[kind]
        out.append({"type": kind, "question": rng.choice(ok), "answer": answer, "fact": FACT[kind]})
    return out


def build(n_entities: int = 48, n_tune: int = 12) -> tuple[list[dict], list[dict]]:
    """(documents, questions): ``n_entities`` documents, three questions each; the first ``n_tune`` entities'
    questions form the ``tune`` split (prompt examples and tuning), the rest ``eval``."""
    rng = random.Random(SEED)
    # the tune and eval entities share no word of their names (so no eval question leaks a tune question)
    adj, noun = rng.sample(ADJ, len(ADJ)), rng.sample(NOUN, len(NOUN))
    names = (rng.sample([f"The {a} {b}" for a in adj[:6] for b in noun[:5]], n_tune)
             + rng.sample([f"The {a} {b}" for a in adj[6:] for b in noun[5:]], n_entities - n_tune))
    people = rng.sample([f"{f} {l}" for f in FIRST for l in LAST], n_entities)
    docs, questions = [], []
    for i, name in enumerate(names):
        kind = KINDS[i % len(KINDS)]
        e = {"name": name, "kind": kind, "street": rng.choice(STREETS), "founder": people[i],
             "year": rng.randint(1890, 2015), "opens": rng.choice(HOURS), "closed": rng.choice(CLOSED),
             "special": rng.choice(SPECIAL[kind])}
        sents = _sentences(rng, e)
        doc_id = f"d{i:02d}"
        split = "tune" if i < n_tune else "eval"
        docs.append({"id": doc_id, "title": name, "split": split, "text": " ".join(s for s, _ in sents),
                     "fields": {k: e[k] for k in ("name", "kind", "street", "founder", "year")},
                     "summary": f"{name} is a {kind} on {e['street']}, founded in {e['year']} by {e['founder']}."})
        avoid = [q["question"] for q in questions if q["split"] == "tune"] if split == "eval" else []
        for j, q in enumerate(_questions(rng, e, avoid)):
            evidence = next(s for s, f in sents if f == q["fact"])
            questions.append({"id": f"q{i:02d}{j}", "doc_id": doc_id, "split": split, "type": q["type"],
                              "question": q["question"], "answer": q["answer"], "evidence": evidence})
    return docs, questions


def main() -> None:
    docs, questions = build()
    for name, rows in (("documents.jsonl", docs), ("questions.jsonl", questions)):
        with open(HERE / name, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(docs)} documents, {len(questions)} questions -> {HERE}")


if __name__ == "__main__":
    main()
