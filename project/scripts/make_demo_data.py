"""Write the project's embedded demo data: small, written for this project, deterministic.

Outputs (in OUTPUT_DIR):
- train.jsonl, dev.jsonl: {"text", "entities": [{"start", "end", "label", "kb_id"}]}
  with kb_id "NIL" for mentions whose entity is not in the KB.
- kb_entities.jsonl: {"id", "name", "description", "type", "frequency"}
- kb_aliases.jsonl: {"alias", "entity", "count"}
- mislabeled.json: indices of the training sentences whose labels were deliberately
  corrupted, and train_clean.jsonl: the training sentences with their clean labels (so the
  report can check what the `denoise` target rejected). The corruption is the commonest
  real annotation error (NoiseBench's crowd and distant labels): the annotator missed the
  entities, which the labels leave as "O".

Sentences come from hand-written templates in five domains filled with a hand-written
inventory of entities; ambiguous aliases ("Paris", "Washington", "Jordan", "Apple") are
disambiguated only by their context phrase, as in real text.
"""
import json
import random
import sys
from pathlib import Path

# id: (name, type, description, aliases, context phrases)
ENTITIES = {
    "D1": ("Paris", "LOC", "Capital city of France, on the Seine", ["Paris"], ["the French capital", "home of the Eiffel Tower", "on the banks of the Seine"]),
    "D2": ("Paris, Texas", "LOC", "Small city in Lamar County, Texas, United States", ["Paris"], ["the small Texas town", "in Lamar County", "a quiet town in northeast Texas"]),
    "D3": ("George Washington", "PER", "First president of the United States", ["Washington", "George Washington"], ["the first American president", "the general of the revolutionary army", "who crossed the Delaware"]),
    "D4": ("Washington, D.C.", "LOC", "Capital city of the United States", ["Washington", "Washington D.C."], ["the American capital", "home of the White House", "on the Potomac river"]),
    "D5": ("Michael Jordan", "PER", "American basketball player with the Chicago Bulls", ["Jordan", "Michael Jordan"], ["the basketball legend", "who won six titles with Chicago", "the former Bulls guard"]),
    "D6": ("Jordan", "LOC", "Country in the Middle East, capital Amman", ["Jordan"], ["the Middle Eastern kingdom", "whose capital is Amman", "east of the Dead Sea"]),
    "D7": ("Apple Inc.", "ORG", "American technology company that makes the iPhone", ["Apple", "Apple Inc."], ["the iPhone maker", "the technology giant from Cupertino", "the computer company"]),
    "D8": ("Apple Records", "ORG", "Record label founded by the Beatles", ["Apple", "Apple Records"], ["the record label founded by the Beatles", "the London music label", "the Beatles' label"]),
    "D9": ("Angela Merkel", "PER", "Former chancellor of Germany", ["Merkel", "Angela Merkel"], ["the former German chancellor", "who led Germany for sixteen years"]),
    "D10": ("Berlin", "LOC", "Capital city of Germany", ["Berlin"], ["the German capital", "on the river Spree"]),
    "D11": ("Siemens", "ORG", "German industrial manufacturing company", ["Siemens"], ["the German engineering group", "the Munich industrial firm"]),
    "D12": ("Marie Curie", "PER", "Physicist and chemist, pioneer of radioactivity research", ["Curie", "Marie Curie"], ["the pioneer of radioactivity", "who won two Nobel prizes"]),
    "D13": ("Nobel Prize", "MISC", "International awards for science, literature and peace", ["Nobel Prize", "Nobel"], ["the famous Swedish award", "the prize founded by Alfred Nobel"]),
    "D14": ("CERN", "ORG", "European laboratory for particle physics near Geneva", ["CERN"], ["the particle physics laboratory", "the lab near Geneva"]),
    "D15": ("Geneva", "LOC", "City in Switzerland on Lake Geneva", ["Geneva"], ["the Swiss city", "on the shore of the lake"]),
    "D16": ("Real Madrid", "ORG", "Spanish football club based in Madrid", ["Real Madrid", "Madrid"], ["the Spanish football club", "the Bernabeu side"]),
    "D17": ("Madrid", "LOC", "Capital city of Spain", ["Madrid"], ["the Spanish capital", "in the centre of Spain"]),
    "D18": ("Serena Williams", "PER", "American tennis player with 23 Grand Slam titles", ["Serena Williams", "Williams"], ["the tennis champion", "who won 23 Grand Slam titles"]),
    "D19": ("Wimbledon", "MISC", "Tennis tournament held in London every summer", ["Wimbledon"], ["the grass court tournament", "the oldest tennis championship"]),
    "D20": ("London", "LOC", "Capital city of the United Kingdom", ["London"], ["the British capital", "on the river Thames"]),
    "D21": ("Reuters", "ORG", "International news agency", ["Reuters"], ["the news agency", "the wire service"]),
    "D22": ("Amazon", "ORG", "American online retail and cloud company", ["Amazon"], ["the online retailer", "the Seattle company"]),
    "D23": ("Amazon River", "LOC", "Large river in South America", ["Amazon", "Amazon River"], ["the South American river", "the river through the rainforest"]),
    "D24": ("Olympic Games", "MISC", "International multi-sport event", ["Olympics", "Olympic Games"], ["the international sporting event", "held every four years"]),
    "D25": ("Tokyo", "LOC", "Capital city of Japan", ["Tokyo"], ["the Japanese capital", "the largest city in Japan"]),
    "D26": ("Toyota", "ORG", "Japanese car manufacturer", ["Toyota"], ["the Japanese carmaker", "the car company from Aichi"]),
    "D27": ("United Nations", "ORG", "Intergovernmental organization of member states", ["United Nations", "UN"], ["the international organization", "headquartered in New York"]),
    "D28": ("Kofi Annan", "PER", "Former Secretary-General of the United Nations", ["Kofi Annan", "Annan"], ["the former UN secretary-general", "the Ghanaian diplomat"]),
    "D29": ("Euro", "MISC", "Currency of the eurozone", ["euro", "Euro"], ["the European currency", "the single currency"]),
    "D30": ("European Central Bank", "ORG", "Central bank of the eurozone, in Frankfurt", ["European Central Bank", "ECB"], ["the central bank in Frankfurt", "the eurozone's central bank"]),
    "D31": ("Frankfurt", "LOC", "Financial centre of Germany on the river Main", ["Frankfurt"], ["the German financial centre", "on the river Main"]),
    "D32": ("Ada Lovelace", "PER", "Mathematician who wrote the first computer program", ["Ada Lovelace", "Lovelace"], ["the first programmer", "the Victorian mathematician"]),
}
# Mentions of entities that are not in the KB (gold kb_id "NIL"), with their context. The
# last ones share an alias with KB entities, so NIL must be decided among real candidates.
NIL_ENTITIES = [
    ("Tomas Vilkas", "PER", "a local shopkeeper"), ("Greta Halvorsen", "PER", "a retired teacher"),
    ("Brightwater Labs", "ORG", "a small start-up"), ("Kelso Mining", "ORG", "a family mining firm"),
    ("Port Aldwin", "LOC", "a fishing village"), ("Marrowdale", "LOC", "a hamlet in the hills"),
    ("Lumen Prize", "MISC", "a regional art award"), ("Northwind Cup", "MISC", "a school sailing race"),
    ("Jordan", "PER", "a young striker from the village team"),
    ("Apple", "ORG", "a small cider farm in Kent"),
    ("Paris", "PER", "the new intern in our office"),
]
TEMPLATES = {
    "PER": [
        "{m} , {c} , gave a speech on Tuesday .",
        "Reporters asked {m} about the plan .",
        "{m} , {c} , was honoured at the ceremony .",
        "A new biography of {m} was published this week .",
    ],
    "LOC": [
        "The festival in {m} , {c} , drew large crowds .",
        "Flights to {m} were cancelled because of the storm .",
        "Officials in {m} , {c} , announced new rules .",
        "Prices in {m} rose sharply last year .",
    ],
    "ORG": [
        "{m} , {c} , reported higher profits .",
        "Shares of {m} fell after the announcement .",
        "A spokesman for {m} , {c} , declined to comment .",
        "{m} hired a new chief executive .",
    ],
    "MISC": [
        "The {m} , {c} , attracted record interest .",
        "She won the {m} last year .",
        "Tickets for the {m} , {c} , sold out .",
        "Organizers of the {m} changed the rules .",
    ],
}
LINKERS = [" Meanwhile , ", " Later , ", " Separately , "]


def mention_for(rng, kb_id):
    name, label, _, aliases, contexts = ENTITIES[kb_id]
    return rng.choice(aliases), label, kb_id, rng.choice(contexts)


def clause(rng, mention, label, kb_id, context):
    template = rng.choice(TEMPLATES[label])
    start = template.index("{m}")
    text = template.replace("{m}", mention).replace("{c}", context)
    return text, {"start": start, "end": start + len(mention), "label": label, "kb_id": kb_id}


def sentence(rng):
    parts = []
    for _ in range(rng.choice([1, 1, 2])):
        if rng.random() < 0.15:
            name, label, context = rng.choice(NIL_ENTITIES)
            parts.append(clause(rng, name, label, "NIL", context))
        else:
            parts.append(clause(rng, *mention_for(rng, rng.choice(sorted(ENTITIES)))))
    text, entities = "", []
    for i, (part, ent) in enumerate(parts):
        prefix = "" if i == 0 else rng.choice(LINKERS)
        offset = len(text) + len(prefix)
        entities.append({**ent, "start": ent["start"] + offset, "end": ent["end"] + offset})
        text = text + prefix + part
    return {"text": text, "entities": entities}


def corrupt(example):
    """The sentence as an annotator who missed its entities labels it."""
    return {"text": example["text"], "entities": []}


def write_jsonl(path, rows):
    with path.open("w", encoding="utf8") as file_:
        for row in rows:
            file_.write(json.dumps(row) + "\n")


def main(output_dir: str, n_train: int = 300, n_dev: int = 80, n_mislabeled: int = 30, seed: int = 0):
    rng = random.Random(seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = [sentence(rng) for _ in range(n_train)]
    # The templates repeat, so a drawn dev sentence can equal a training one: redraw it
    # (spacy debug data found 22 of the 80 dev sentences in train when it did not).
    seen = {example["text"] for example in train}
    dev = []
    while len(dev) < n_dev:
        example = sentence(rng)
        if example["text"] not in seen:
            seen.add(example["text"])
            dev.append(example)
    mislabeled = sorted(rng.sample(range(n_train), n_mislabeled))
    write_jsonl(out / "train_clean.jsonl", train)
    for i in mislabeled:
        train[i] = corrupt(train[i])
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "dev.jsonl", dev)
    entities = [
        {"id": kb_id, "name": name, "description": desc, "type": label, "frequency": 10 + 5 * len(aliases)}
        for kb_id, (name, label, desc, aliases, _) in ENTITIES.items()
    ]
    write_jsonl(out / "kb_entities.jsonl", entities)
    aliases = []
    for kb_id, (name, _, _, alias_list, _) in ENTITIES.items():
        for alias in dict.fromkeys(alias_list + [name]):
            aliases.append({"alias": alias, "entity": kb_id, "count": 5 if alias == name else 3})
    write_jsonl(out / "kb_aliases.jsonl", aliases)
    (out / "mislabeled.json").write_text(json.dumps(mislabeled) + "\n", encoding="utf8")
    print(f"Wrote {len(train)} train, {len(dev)} dev sentences, {len(entities)} KB entities to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
