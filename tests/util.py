"""Shared test helpers: tiny training sets and pipeline builders."""
from typing import List, Optional

import spacy
from spacy.language import Language
from spacy.training import Example

TRAIN_DATA = [
    ("John Smith lives in London .", [(0, 10, "PER"), (20, 26, "LOC")]),
    ("Mary works for Google in Paris .", [(0, 4, "PER"), (15, 21, "ORG"), (25, 30, "LOC")]),
    ("Apple opened an office in Berlin .", [(0, 5, "ORG"), (26, 32, "LOC")]),
    ("The river was cold .", []),
    ("Microsoft said John will visit New York .", [(0, 9, "ORG"), (15, 19, "PER"), (31, 39, "LOC")]),
]


def make_examples(nlp: Language, data=TRAIN_DATA) -> List[Example]:
    examples = []
    for text, ents in data:
        examples.append(Example.from_dict(nlp.make_doc(text), {"entities": ents}))
    return examples


def tiny_ner_config(model_path: str, **extra) -> dict:
    """add_pipe config for rsft_ner with the tiny test BERT."""
    config = {"model": {"tok2vec": {"name": model_path}, "hidden_width": 32}}
    config.update(extra)
    return config


def make_tiny_ner_nlp(model_path: str, base: Optional[Language] = None, **extra) -> Language:
    nlp = base if base is not None else spacy.blank("en")
    nlp.add_pipe("rsft_ner", config=tiny_ner_config(model_path, **extra))
    return nlp


PEOPLE = ["John", "Mary", "Peter", "Anna", "David", "Laura", "Tom", "Sarah"]
PLACES = ["London", "Paris", "Berlin", "Madrid", "Rome", "Vienna", "Oslo", "Dublin"]
ORGS = ["Google", "Apple", "Siemens", "Nestle", "Reuters", "Fiat", "Nokia", "Intel"]
TEMPLATES = [
    ("{PER} visited {LOC} .", ["PER", "LOC"]),
    ("{PER} works for {ORG} .", ["PER", "ORG"]),
    ("{ORG} opened an office in {LOC} .", ["ORG", "LOC"]),
    ("In {LOC} , {PER} met the head of {ORG} .", ["LOC", "PER", "ORG"]),
]


def noisy_ner_data(n: int = 48, seed: int = 0):
    """Template sentences where the odd-numbered examples have wrong entity labels.

    Every name keeps one true type throughout, so the clean labels are the plurality
    and a model that learns them disagrees with the corrupted examples.
    RETURNS (List[Tuple[str, list]], List[int]): The data and the corrupted indices.
    """
    import random

    rng = random.Random(seed)
    fillers = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}
    data, corrupted = [], []
    for i in range(n):
        template, labels = TEMPLATES[i % len(TEMPLATES)]
        text, ents = template, []
        for label in labels:
            name = rng.choice(fillers[label])
            start = text.index("{" + label + "}")
            text = text.replace("{" + label + "}", name, 1)
            wrong = rng.choice([other for other in fillers if other != label])
            ents.append((start, start + len(name), wrong if i % 2 else label))
        # Placeholders are replaced left to right, so earlier offsets stay valid.
        data.append((text, sorted(ents)))
        if i % 2:
            corrupted.append(i)
    return data, corrupted
