"""Write the course's instruction sets (review → JSON extraction, and preference pairs) from the rules below.

    python tutorlib/data/instruction_sets/generate.py      # rewrites extraction_sft.jsonl and extraction_prefs.jsonl

Every review is assembled from a label that is drawn first (sentiment, rating, issue, recommendation), then
written to fit it, so each field's ground truth is known by construction. The rules are in DATASHEET.md.
The output is deterministic (seeded); rerunning it reproduces the shipped files byte for byte.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_DOMAINS = ("electronics", "restaurant", "clothing", "app", "kitchen")
HELDOUT_DOMAINS = ("hotel", "book")
ISSUES = ("price", "quality", "service", "delay")
FIELDS = ("product", "sentiment", "rating", "issue", "would_recommend")

# ---------------------------------------------------------------- domain banks
# products: named verbatim in the review; praise: positive aspects; issue banks: complaints of each kind
# (several written with a negation); context: who/when/why, which carries no label.
D = {
    "electronics": dict(
        products=["wireless earbuds", "mechanical keyboard", "portable speaker", "smartwatch", "usb-c charger",
                  "gaming mouse", "e-reader", "webcam", "noise-cancelling headphones", "power bank"],
        praise=["the sound is crisp even at low volume", "pairing took about ten seconds", "the battery easily lasts two days",
                "it feels solid and well built", "the setup was painless", "it never drops the bluetooth connection",
                "the controls are intuitive", "it charges my phone twice over", "the picture is sharp in dim light",
                "the keys have a satisfying click"],
        price=["it costs far more than similar models", "for that price I expected a case at least",
               "it went on sale for half the price a week later", "it is overpriced for the plastic you get",
               "the replacement tips cost extra, which feels greedy"],
        quality=["the battery died after three weeks", "the left side started crackling within a month",
                 "the hinge snapped the first time I dropped it", "it does not hold a charge overnight",
                 "the firmware crashes every other day", "the cable frayed near the plug"],
        service=["support closed my ticket without reading it", "the warranty desk kept transferring me",
                 "customer service refused a replacement", "nobody from the brand ever wrote back",
                 "the chat agent was rude and unhelpful"],
        delay=["it arrived eleven days after the promised date", "shipping took almost a month",
               "the courier held the parcel for two weeks", "the preorder slipped three times before it shipped",
               "delivery was late by more than a week"],
        context=["I use it on my daily commute.", "Bought it as a birthday gift for my brother.",
                 "I work from home, so it gets used all day.", "Replaced an older model from the same brand.",
                 "Picked it up during a weekend sale."]),
    "restaurant": dict(
        products=["pad thai", "tasting menu", "margherita pizza", "ramen bowl", "sunday brunch", "fish tacos",
                  "vegan burger", "lunch special", "sushi platter", "steak frites"],
        praise=["the noodles were perfectly chewy", "every plate came out hot", "the portions are generous",
                "the sauce had real depth", "our waiter remembered every allergy", "the dessert alone is worth the trip",
                "the ingredients tasted fresh", "the crust was thin and blistered", "the broth was rich without being salty",
                "the room is cosy and quiet enough to talk"],
        price=["two small plates cost us nearly sixty dollars", "the bill was padded with a service charge we never agreed to",
               "it is expensive for such tiny portions", "the drinks are absurdly overpriced",
               "they charged extra for bread and water"],
        quality=["the rice was undercooked", "the fish did not taste fresh", "my burger arrived cold in the middle",
                 "everything was drowning in oil", "the fries were soggy and bland", "the salad was wilted"],
        service=["the server rolled his eyes at our questions", "nobody came to take our order for twenty minutes",
                 "the manager argued with us about the bill", "staff ignored us once the food was down",
                 "the host was dismissive and cold"],
        delay=["we waited over an hour for the mains", "our reservation was not honoured and we stood for forty minutes",
               "the delivery showed up ninety minutes late", "dessert took longer than the whole meal",
               "the kitchen forgot our order and we waited again"],
        context=["We went for my mother's birthday.", "Came here on a rainy Tuesday night.",
                 "Ordered for the office on a Friday.", "It was our first visit after it reopened.",
                 "A friend had been raving about it for months."]),
    "clothing": dict(
        products=["rain jacket", "running shoes", "wool sweater", "denim jeans", "winter boots", "linen shirt",
                  "yoga leggings", "hiking socks", "leather belt", "puffer coat"],
        praise=["the fit is true to size", "the fabric breathes on hot days", "the stitching is neat and tight",
                "it kept me dry in a downpour", "the colour has not faded after many washes",
                "they were comfortable straight out of the box", "the pockets are deep enough for a phone",
                "it layers well under a coat", "the sole grips on wet pavement", "it looks sharper than in the photos"],
        price=["it is twice what the high street charges", "the sale price was fake, it was never that high",
               "return shipping cost me almost a third of the price", "way too expensive for a basic cut",
               "I paid premium money for a budget item"],
        quality=["a seam split after two wears", "it shrank a full size in the first wash", "the zip broke within a week",
                 "the dye bled onto my other clothes", "the sole started peeling after a month", "it pills terribly"],
        service=["the shop refused an exchange even with the receipt", "support sent me the same canned answer three times",
                 "the store clerk was condescending", "they never processed my refund request",
                 "my complaint was ignored for weeks"],
        delay=["it took five weeks to arrive", "the order sat in a warehouse for a fortnight",
               "delivery missed the date I needed it for", "the parcel was delayed twice without notice",
               "shipping was painfully slow"],
        context=["I bought it for a trip to Scotland.", "Needed something for the office.", "Wore them for a half marathon.",
                 "My partner picked it for me.", "It replaced one I had worn for years."]),
    "app": dict(
        products=["budget tracker app", "language learning app", "photo editor", "meditation app", "to-do list app",
                  "fitness tracker app", "podcast player", "recipe app", "note-taking app", "password manager"],
        praise=["the interface is clean and fast", "sync between my phone and laptop is instant",
                "the reminders actually keep me on track", "it works offline without complaint",
                "the lessons are short and well paced", "the export feature saved me hours",
                "there are no annoying ads", "the dark mode is easy on the eyes", "search finds anything in a second",
                "onboarding took two minutes"],
        price=["the subscription doubled without warning", "every useful feature is behind a paywall",
               "it is pricey compared with free alternatives", "the yearly plan auto-renewed at a higher price",
               "in-app purchases are pushed on every screen"],
        quality=["it crashes whenever I open the calendar", "my data vanished after the last update",
                 "the sync duplicates every entry", "it drains the battery in the background",
                 "the widget never refreshes", "half the buttons do not respond"],
        service=["the developers never reply to bug reports", "support told me to reinstall and closed the ticket",
                 "the help centre links are all broken", "my refund request was ignored",
                 "the support bot loops without a human"],
        delay=["the promised fix has been coming soon for a year", "each screen takes ages to load",
               "syncing a single note takes minutes", "the update rollout was delayed for months",
               "login takes forever every morning"],
        context=["I have used it every day for three months.", "Switched from a competitor last spring.",
                 "My therapist suggested it.", "I use it on both Android and a laptop.", "A colleague recommended it."]),
    "kitchen": dict(
        products=["stand mixer", "air fryer", "chef's knife", "cast iron skillet", "coffee grinder", "rice cooker",
                  "blender", "electric kettle", "toaster", "food processor"],
        praise=["it heats up in under two minutes", "the blade is still razor sharp", "cleanup takes seconds",
                "the rice comes out fluffy every time", "it is quieter than my old one", "the grind is very even",
                "it crushes ice without struggling", "the handle stays cool", "it fits neatly under the cabinet",
                "the timer is precise"],
        price=["it costs as much as a professional model", "the replacement jug costs half the price of the machine",
               "it is overpriced for what it does", "I found the same unit for much less elsewhere",
               "the accessories are sold separately at silly prices"],
        quality=["the non-stick coating flaked off within a month", "the motor smells of burning plastic",
                 "the lid cracked after a few uses", "it rusted after the first wash", "the thermostat is wildly off",
                 "the buttons stopped working"],
        service=["the manufacturer refused to honour the warranty", "support asked for photos and then went silent",
                 "the retailer hung up on me", "customer care blamed me for the defect",
                 "no one answered the support line for days"],
        delay=["it arrived three weeks late", "the courier lost it and the resend took another fortnight",
               "the backorder dragged on for two months", "delivery was rescheduled four times",
               "it shipped a month after payment"],
        context=["I cook for a family of five.", "Bought it when we moved into a new flat.", "A wedding present to ourselves.",
                 "I bake most weekends.", "Replaced a cheap one that finally died."]),
    "hotel": dict(
        products=["seaside inn", "airport hotel", "city hostel", "boutique hotel", "ski lodge", "family suite",
                  "budget motel", "spa resort", "harbour guesthouse", "business hotel"],
        praise=["the bed was wonderfully firm", "the view over the bay was stunning", "breakfast had plenty of choice",
                "the room was spotless", "the shower pressure was excellent", "it is a short walk from the station",
                "the pool was warm and uncrowded", "blackout curtains meant we slept late", "the lobby bar mixes great cocktails",
                "the walls are thick, so it was silent at night"],
        price=["parking added forty dollars a night", "the resort fee was hidden until checkout",
               "it is steep for a room without a window", "the minibar prices are outrageous",
               "we paid luxury rates for a tired room"],
        quality=["the carpet was stained and smelled damp", "the air conditioning rattled all night", "mould covered the bathroom ceiling",
                 "the mattress sagged in the middle", "the wifi dropped every few minutes", "there was no hot water on day two"],
        service=["the receptionist shrugged at our complaint", "housekeeping never came once in four nights",
                 "the concierge gave us wrong directions twice", "staff were curt at the front desk",
                 "nobody fixed the broken lamp despite three requests"],
        delay=["check-in took over an hour", "our room was not ready until evening", "the airport shuttle was forty minutes late",
               "room service took ninety minutes", "the lift queue in the morning lasted ages"],
        context=["We stayed three nights in July.", "It was a work trip, two nights only.", "We came for a friend's wedding.",
                 "Booked last minute after a cancelled flight.", "Our anniversary weekend away."]),
    "book": dict(
        products=["mystery novel", "cookbook", "biography", "fantasy trilogy", "poetry collection", "history book",
                  "travel guide", "graphic novel", "self-help book", "short story anthology"],
        praise=["the plot twists landed every time", "the index makes it easy to dip in and out", "the prose is lyrical",
                "the characters feel like real people", "the maps and photos are gorgeous", "I read it in one sitting",
                "the research is meticulous", "the pacing never drags", "the illustrations are striking",
                "the final chapter moved me to tears"],
        price=["the hardback is priced like a textbook", "the ebook costs more than the paperback",
               "it is far too expensive for a thin volume", "the second volume doubled in price",
               "the collector's edition is a cash grab"],
        quality=["pages fell out of the binding", "the translation is clumsy and full of errors",
                 "the chapters repeat themselves endlessly", "the ending felt rushed and lazy",
                 "the print is blurry on every page", "the facts are riddled with mistakes"],
        service=["the bookshop refused to swap my damaged copy", "the publisher never answered my email",
                 "the seller sent the wrong edition and blamed me", "the store staff were snooty",
                 "customer support ignored my complaint about the misprint"],
        delay=["my copy arrived a month after release day", "the preorder shipped six weeks late",
               "the sequel has been delayed for years", "delivery took far longer than promised",
               "it sat at the depot for three weeks"],
        context=["I read it on holiday.", "Our book club picked it this month.", "A gift from my aunt.",
                 "I had waited years for this one.", "Bought it at an airport on a whim."]),
}

# ---------------------------------------------------------------- shared phrasing
RATING_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
RATING_FORMS = [
    lambda r: f"{r}/5.", lambda r: f"{RATING_WORDS[r].capitalize()} stars from me.", lambda r: f"I'd give it a {r} out of 5.",
    lambda r: f"Rating: {r}.", lambda r: f"{r} stars.", lambda r: f"My score is {r} out of five.",
    lambda r: f"It gets {RATING_WORDS[r]} star{'s' if r > 1 else ''}.", lambda r: f"{RATING_WORDS[r].capitalize()} out of five overall.",
    lambda r: f"Scoring it {r}/5.", lambda r: f"A solid {r} out of 5 in my book." if r >= 4 else f"Only {r} out of 5.",
]
REC_YES = ["I would recommend it.", "Would happily recommend.", "I'd tell a friend to get it.", "Recommended.",
           "I would not hesitate to recommend it.", "Worth it, and I'd suggest it to others.", "Go for it.",
           "I have already recommended it to two friends.", "You won't regret it.", "I'd buy it again and recommend it."]
REC_NO = ["I would not recommend it.", "Can't recommend it.", "Not something I'd suggest to anyone.", "Avoid.",
          "I would never recommend it.", "Save your money.", "I won't be recommending it.", "Look elsewhere.",
          "I'd steer friends away from it.", "Not recommended."]
MIXED_YES = ["Still, I'd recommend it overall.", "Despite that, I would recommend it.", "On balance I'd still suggest it.",
             "I'd recommend it anyway, with that caveat."]
MIXED_NO = ["So, on balance, I can't recommend it.", "Because of that I wouldn't recommend it.", "Overall not one I'd recommend.",
            "For me that rules out recommending it."]
OPEN = {
    "positive": ["Really pleased with the {p}.", "The {p} exceeded my expectations.", "Loved the {p}.", "Great {p}.",
                 "So happy I chose the {p}.", "The {p} is a winner.", "Honestly impressed by the {p}."],
    "negative": ["Disappointed with the {p}.", "The {p} was a letdown.", "Regret choosing the {p}.", "Bad experience with the {p}.",
                 "The {p} was not what I hoped.", "Frustrated by the {p}.", "Unhappy with the {p}."],
    "mixed": ["Mixed feelings about the {p}.", "The {p} is good and bad.", "Some things to like about the {p}, some not.",
              "The {p} is a bit of a mixed bag.", "Not sure what to make of the {p}.", "The {p} is fine, mostly.",
              "Half happy with the {p}."],
}
BUT = [", but ", ". However, ", ", although ", ". On the other hand, ", "; sadly ", ". Then again, "]
AND = [", and ", ". Also, ", "; plus ", ". On top of that, ", ". "]
STYLES = ("plain", "terse", "chatty", "formal", "lowercase")
SYSTEM = "Extract the review into JSON."


def _sentence(s: str) -> str:
    s = s.strip()
    return s[0].upper() + s[1:] + ("" if s.endswith((".", "!", "?")) else ".")


def _join(parts: list[str], seps: list[str], rng: random.Random) -> str:
    out = parts[0]
    for p in parts[1:]:
        sep = rng.choice(seps)
        out += sep + (p[0].upper() + p[1:] if sep.endswith(". ") else p)
    return _sentence(out)


def make_label(rng: random.Random, domain: str) -> dict:
    """Draw the ground truth first: the review is then written to fit it."""
    sentiment = rng.choices(["positive", "negative", "mixed"], weights=[0.38, 0.34, 0.28])[0]
    rating = {"positive": rng.choice([4, 5, 5]), "negative": rng.choice([1, 1, 2]), "mixed": rng.choice([2, 3, 3, 4])}[sentiment]
    if rng.random() < 0.25:
        rating = None
    issue = "none" if sentiment == "positive" else rng.choice(ISSUES)
    recommend = {"positive": True, "negative": False, "mixed": rng.random() < 0.5}[sentiment]
    return {"product": rng.choice(D[domain]["products"]), "sentiment": sentiment, "rating": rating, "issue": issue,
            "would_recommend": recommend}


def write_review(rng: random.Random, domain: str, label: dict) -> str:
    """A review that states exactly the fields of ``label``, in one of five styles, 2–6 sentences long."""
    bank, p, s = D[domain], label["product"], label["sentiment"]
    praise = rng.sample(bank["praise"], rng.choice([1, 2, 2, 3]) if s == "positive" else 1)
    complaints = rng.sample(bank[label["issue"]], rng.choice([1, 2]) if s == "negative" else 1) if s != "positive" else []
    body = []
    if s == "positive":
        body.append(_join(praise, AND, rng))
    elif s == "negative":
        body.append(_join(complaints, AND, rng))
    else:
        first, second = (praise[0], complaints[0]) if rng.random() < 0.5 else (complaints[0], praise[0])
        body.append(_sentence(first + rng.choice([", but ", ", although ", ", yet "]) + second) if rng.random() < 0.6
                    else _sentence(first) + " " + _sentence(second))
    rec = rng.choice((MIXED_YES if label["would_recommend"] else MIXED_NO) if s == "mixed" and rng.random() < 0.6
                     else (REC_YES if label["would_recommend"] else REC_NO))
    rating = rng.choice(RATING_FORMS)(label["rating"]) if label["rating"] is not None else ""
    opener = rng.choice(OPEN[s]).format(p=p)
    if rng.random() < 0.3:
        # the product named inside the body instead of an opener
        opener = rng.choice(["About the {p}.", "Re the {p}.", "Review of the {p}.", "Bought the {p}.", "Tried the {p}."]).format(p=p)
    parts = [opener]
    if rng.random() < 0.45:
        parts.append(rng.choice(bank["context"]))
    parts += body
    tail = [rec] + ([rating] if rating else [])
    rng.shuffle(tail)
    parts += tail
    style = rng.choice(STYLES)
    if style == "terse":
        text = " ".join(x.rstrip(".") + "." for x in parts if x)
        text = text.replace(", and ", ", ").replace("I would ", "would ").replace("I'd ", "would ")
    elif style == "chatty":
        text = " ".join(parts)
        text = rng.choice(["Ok so. ", "Honestly? ", "Quick review: ", "Long story short - ", "Well. "]) + text
        text = text.replace(".", "!", 1)
    elif style == "formal":
        text = "I recently " + rng.choice(["purchased", "tried", "used", "chose"]) + f" the {p}. " + " ".join(parts[1:])
        text = text.replace("I'd", "I would").replace("can't", "cannot").replace("won't", "will not")
        text += " " + rng.choice(["Thank you for reading.", "I hope this helps other customers.", "That is my honest assessment.", ""])
    elif style == "lowercase":
        text = " ".join(parts).lower().replace(".", "").replace("  ", " ")
    else:
        text = " ".join(parts)
    return " ".join(text.split())


def answer(label: dict) -> str:
    """The target: compact JSON with the fields in a fixed order."""
    return json.dumps({k: label[k] for k in FIELDS})


# ---------------------------------------------------------------- preference pairs
def rejected_answer(rng: random.Random, domain: str, label: dict) -> tuple[str, str]:
    """A worse answer and its kind: a wrong or invented value, a missing field, prose, or chatter around the JSON."""
    kind = rng.choices(["wrong_value", "missing_field", "prose", "chatty", "invented_field"],
                       weights=[0.36, 0.30, 0.12, 0.08, 0.14])[0]
    bad = dict(label)
    if kind == "wrong_value":
        field = rng.choice(FIELDS)
        if field == "product":
            bad["product"] = rng.choice([x for x in D[domain]["products"] if x != label["product"]])
        elif field == "sentiment":
            bad["sentiment"] = rng.choice([x for x in ("positive", "negative", "mixed") if x != label["sentiment"]])
        elif field == "rating":
            bad["rating"] = rng.choice([r for r in (1, 2, 3, 4, 5) if r != label["rating"]])
        elif field == "issue":
            bad["issue"] = rng.choice([x for x in ISSUES + ("none",) if x != label["issue"]])
        else:
            bad["would_recommend"] = not label["would_recommend"]
        return answer(bad), f"wrong_value:{field}"
    if kind == "missing_field":
        field = rng.choice([f for f in FIELDS if f != "product"])
        return json.dumps({k: label[k] for k in FIELDS if k != field}), f"missing_field:{field}"
    if kind == "prose":
        verdict = {"positive": "liked", "negative": "disliked", "mixed": "had mixed feelings about"}[label["sentiment"]]
        rec = "would" if label["would_recommend"] else "would not"
        return f"The reviewer {verdict} the {label['product']} and {rec} recommend it.", "prose"
    if kind == "chatty":
        return rng.choice(["Sure! Here is the JSON:\n", "Here you go: ", "Of course. "]) + answer(label), "chatty"
    extra = rng.choice([("brand", rng.choice(["Acme", "Nordica", "Zenith", "Orbit"])), ("price", rng.choice([19, 45, 120, 300])),
                        ("purchase_date", "2024-03-02")])
    return json.dumps({**{k: label[k] for k in FIELDS}, extra[0]: extra[1]}), "invented_field"


def build(seed: int, domains: tuple[str, ...], per_domain: int, split: str, kind: str) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for domain in domains:
        seen: set[str] = set()
        while sum(r["domain"] == domain for r in rows) < per_domain:
            label = make_label(rng, domain)
            review = write_review(rng, domain, label)
            if review in seen:
                continue
            seen.add(review)
            row = {"id": f"{kind}-{split}-{domain}-{len(seen):03d}", "domain": domain, "split": split, "review": review,
                   "answer": answer(label), "fields": {k: label[k] for k in FIELDS}}
            if kind == "pref":
                rejected, how = rejected_answer(rng, domain, label)
                chosen = row.pop("answer")
                row = {**row, "chosen": chosen, "rejected": rejected, "rejected_kind": how}
            rows.append(row)
    return rows


RULES = """# Datasheet: course-written review extraction and preference sets

Written for this course by `generate.py` in this folder (deterministic, seeded: rerunning it rewrites both files
byte for byte). Nothing was copied from the web or from a model; every sentence fragment is in `generate.py`.

## Task

Read one customer review and answer with one JSON object with the keys, in this order:
`product` (the reviewed item, copied verbatim from the review, lower case), `sentiment` (`positive`,
`negative` or `mixed`), `rating` (the integer 1-5 the review states, or `null` when it states none),
`issue` (the main complaint: `price`, `quality`, `service`, `delay`, or `none`) and `would_recommend`
(`true` or `false`, as the review says).

## How each review was written (the labelling rules)

1. The label is drawn first; the review is then written to state exactly that label.
   Sentiment: positive 38 %, negative 34 %, mixed 28 %.
2. positive: 1-3 praise clauses, no complaint; rating 4 or 5; issue `none`; recommends.
   negative: 1-2 complaint clauses of one issue kind, no praise; rating 1 or 2; does not recommend.
   mixed: one praise and one complaint clause (either order, joined or in two sentences); rating 2-4;
   recommends or not with equal odds (sometimes "still, I'd recommend it", sometimes "I can't recommend it").
3. A quarter of the reviews state no rating (`null`). Ratings are written in ten forms ("4/5", "four stars
   from me", "I'd give it a 4 out of 5", "Rating: 4", ...).
4. Recommendations are written in 28 forms, several with a negation ("I would not hesitate to recommend it"
   is `true`; "Can't recommend it" is `false`).
5. Each domain has its own products (10), praise clauses (10), complaint clauses (5-6 per issue kind, several
   written with a negation such as "it does not hold a charge overnight") and context sentences (5) that
   carry no label.
6. Five writing styles, drawn uniformly: plain, terse (fragments), chatty (an interjection and an
   exclamation), formal ("I recently purchased the ..."), and lower case without punctuation. 30 % of the
   reviews name the product in a short lead ("Bought the blender.") instead of an opinionated opener.
7. Duplicate reviews within a domain are redrawn.

## Preference pairs

Reviews written by the same rules with other seeds (disjoint from the extraction set). `chosen` is the
reference JSON. `rejected` is one of: a wrong value in one field (36 %: another product of the domain - a
hallucination -, another sentiment, rating, issue or the opposite recommendation), a missing field (30 %),
prose instead of JSON (12 %), the right JSON wrapped in chatter ("Sure! Here is the JSON: ...", 8 %), or
the right JSON plus an invented field such as a brand or price the review never states (14 %). So the chosen
answer is not mostly the shorter one (the share is in the table below): a model that learns "shorter wins"
does not learn these preferences.

## Splits

Split by domain: `train` is electronics, restaurant, clothing, app and kitchen reviews; `heldout` is hotel
and book reviews, whose products, praise, complaints and context sentences never occur in training. Only the
shared phrasing (openers, rating and recommendation forms) is common to both, which is what a model must
learn to generalise. `tests/test_data_instructions.py` checks that no held-out review has a character-5-gram
Jaccard similarity above 0.5 with any training review (the measured maximum is below).

## Known limits

The reviews are short (one to six sentences) and written from fragments, so they are more regular than
real reviews; the labels are exact by construction, which a human-labelled set would not be. A gain on the
held-out split shows that a model learned the task's format and rules, on wording it did not see; it says
nothing about messier real reviews.
"""


def write_datasheet(sft: list[dict], prefs: list[dict]) -> None:
    from collections import Counter

    def grams(t: str) -> set[str]:
        t = t.lower()
        return {t[i:i + 5] for i in range(len(t) - 4)}

    train = [grams(r["review"]) for r in sft + prefs if r["split"] == "train"]
    held = [grams(r["review"]) for r in sft + prefs if r["split"] == "heldout"]
    worst = max(max(len(a & b) / len(a | b) for b in train) for a in held)
    lines = [RULES, "## Sizes (written by generate.py)", "",
             "| set | split | domains | rows | positive / negative / mixed | rating null | mean review chars |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, rows in (("extraction_sft.jsonl", sft), ("extraction_prefs.jsonl", prefs)):
        for split in ("train", "heldout"):
            part = [r for r in rows if r["split"] == split]
            c = Counter(r["fields"]["sentiment"] for r in part)
            lines.append(f"| {name} | {split} | {', '.join(sorted({r['domain'] for r in part}))} | {len(part)} | "
                         f"{c['positive']} / {c['negative']} / {c['mixed']} | "
                         f"{sum(r['fields']['rating'] is None for r in part)} | "
                         f"{sum(len(r['review']) for r in part) / len(part):.0f} |")
    kinds = Counter(r["rejected_kind"].split(":")[0] for r in prefs)
    shorter = sum(len(r["chosen"]) < len(r["rejected"]) for r in prefs) / len(prefs)
    lines += ["", f"Rejected kinds: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}. "
              f"The chosen answer is the shorter one in {100 * shorter:.0f} % of the pairs.", "",
              f"Largest character-5-gram Jaccard similarity of a held-out review with a training review (both sets): "
              f"{worst:.3f}.", ""]
    (HERE / "DATASHEET.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    sft = build(11, TRAIN_DOMAINS, 80, "train", "sft") + build(12, HELDOUT_DOMAINS, 60, "heldout", "sft")
    prefs = build(21, TRAIN_DOMAINS, 48, "train", "pref") + build(22, HELDOUT_DOMAINS, 40, "heldout", "pref")
    for name, rows in (("extraction_sft.jsonl", sft), ("extraction_prefs.jsonl", prefs)):
        with (HERE / name).open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)} rows")
    write_datasheet(sft, prefs)


if __name__ == "__main__":
    main()
