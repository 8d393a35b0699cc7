"""Candidate generation for `rsft_entity_linker`, as a registered, swappable function.

`spacy-rsft.candidate_generator.v1` looks a mention up in the KB's alias table in three
stages, stopping at the first that finds something:

1. exact alias (spaCy's own `kb.get_alias_candidates`);
2. normalized alias: case, punctuation and whitespace folded ("machine learning" finds the
   alias "Machine Learning", "U.S." finds "US");
3. optionally fuzzy: aliases whose character-trigram Jaccard similarity to the mention is at
   least `fuzzy_threshold`.

Each candidate carries its prior p(e|m) and how it matched (1.0 exact, 0.9 normalized, the
similarity for fuzzy), which the linker uses as features.

With `expand_mentions` (the default), a mention whose words appear, whole and in order, inside
a longer mention of the same document with a compatible label takes that mention's candidates:
a later "Simmons" is looked up as the "Phil Simmons" named earlier, as news text and the AIDA
preparation of Ganea & Hofmann (2017) do. The other mentions are `doc.ents` when a Span is
looked up alone, or the mentions passed to `for_doc` (which the linker uses, so expansion also
works in training, where the predicted doc has no entities yet).
"""
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Set, Union

from spacy.kb import KnowledgeBase
from spacy.tokens import Span
from spacy.util import registry

from ..errors import Errors

_PUNCT = re.compile(r"[^\w\s]", flags=re.UNICODE)
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=1 << 16)
def normalize_alias(text: str) -> str:
    """Fold case, accents-preserving Unicode form, punctuation and whitespace.

    text (str): A mention or alias.
    RETURNS (str): Its lookup key.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _PUNCT.sub("", text)
    return _SPACE.sub(" ", text).strip()


def trigrams(text: str) -> Set[str]:
    padded = f"  {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


@dataclass(frozen=True)
class Candidate:
    entity: str
    prior: float
    match: float  # 1.0 exact, 0.9 normalized, the similarity for fuzzy


def _words(text: str) -> List[str]:
    return normalize_alias(text).split()


def _contains_words(longer: List[str], shorter: List[str]) -> bool:
    """Whether `shorter` occurs in `longer` as a run of whole words."""
    n = len(shorter)
    return any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


def expansion_of(mention: Span, others: Sequence[Span]) -> Optional[Span]:
    """The longest other mention that contains this one's words, whole and in order, with
    the same label (or either unlabeled); the first such mention on ties. None if there is
    none.

    mention (Span): The mention.
    others (Sequence[Span]): The document's mentions (the mention itself may be among them).
    RETURNS (Optional[Span]): The mention to look up instead.
    """
    words = _words(mention.text)
    if not words:
        return None
    best, best_len = None, len(words)
    for other in others:
        if len(other) <= 0 or (mention.label and other.label and mention.label != other.label):
            continue
        other_words = _words(other.text)  # normalize_alias is cached: one pass per text
        if len(other_words) > best_len and _contains_words(other_words, words):
            best, best_len = other, len(other_words)
    return best


class CandidateGenerator:
    """Exact, then normalized, then (optionally) fuzzy alias lookup in a KB."""

    def __init__(self, normalize: bool = True, fuzzy: bool = False,
                 fuzzy_threshold: float = 0.5, max_candidates: int = 50,
                 expand_mentions: bool = True) -> None:
        self.normalize = normalize
        self.expand_mentions = expand_mentions
        self.fuzzy = fuzzy
        self.fuzzy_threshold = fuzzy_threshold
        self.max_candidates = max_candidates
        self._kb_id = None
        self._by_key: Dict[str, List[str]] = {}
        self._by_trigram: Dict[str, Set[str]] = {}

    def _index(self, kb: KnowledgeBase) -> None:
        # Built once per KB object (the KB is fixed after initialize/load).
        if self._kb_id == id(kb):
            return
        self._by_key, self._by_trigram = {}, {}
        for alias in kb.get_alias_strings():
            key = normalize_alias(alias)
            self._by_key.setdefault(key, []).append(alias)
            if self.fuzzy:
                for gram in trigrams(key):
                    self._by_trigram.setdefault(gram, set()).add(key)
        self._kb_id = id(kb)

    def __call__(self, kb: KnowledgeBase, mention: Union[Span, str]) -> List[Candidate]:
        """Candidates for a mention, best prior first, at most `max_candidates`.

        kb (KnowledgeBase): The KB.
        mention (Union[Span, str]): The mention (a Span, like spaCy's own candidate
            generators take, so a generator may use the doc; or its text).
        RETURNS (List[Candidate]): The candidates.
        """
        if isinstance(mention, Span):
            return self.for_doc(kb, [mention], others=mention.doc.ents)[0]
        return self.lookup(kb, mention)

    def for_doc(self, kb: KnowledgeBase, mentions: Sequence[Span],
                others: Optional[Sequence[Span]] = None) -> List[List[Candidate]]:
        """Candidates for the mentions of one document, each expanded (with
        `expand_mentions`) to the longest other mention that contains it and has candidates.

        kb (KnowledgeBase): The KB.
        mentions (Sequence[Span]): The mentions to look up.
        others (Optional[Sequence[Span]]): The document's mentions to expand to; default:
            `mentions`.
        RETURNS (List[List[Candidate]]): The candidates of each mention.
        """
        others = mentions if others is None else others
        out = []
        for mention in mentions:
            longer = expansion_of(mention, others) if self.expand_mentions else None
            found = self.lookup(kb, longer.text) if longer is not None else []
            out.append(found or self.lookup(kb, mention.text))
        return out

    def lookup(self, kb: KnowledgeBase, mention: str) -> List[Candidate]:
        """Candidates for a mention text alone (no expansion)."""
        found = self._from_aliases(kb, [mention], 1.0)
        if not found and self.normalize:
            self._index(kb)
            found = self._from_aliases(kb, self._by_key.get(normalize_alias(mention), []), 0.9)
        if not found and self.fuzzy:
            self._index(kb)
            found = self._fuzzy(kb, normalize_alias(mention))
        found.sort(key=lambda c: (-c.match, -c.prior, c.entity))
        return found[: self.max_candidates]

    def _from_aliases(self, kb: KnowledgeBase, aliases: List[str], match: float) -> List[Candidate]:
        best: Dict[str, Candidate] = {}
        for alias in aliases:
            for cand in kb.get_alias_candidates(alias):
                entity = cand.entity_
                if entity not in best or cand.prior_prob > best[entity].prior:
                    best[entity] = Candidate(entity, float(cand.prior_prob), match)
        return list(best.values())

    def _fuzzy(self, kb: KnowledgeBase, key: str) -> List[Candidate]:
        grams = trigrams(key)
        overlap: Dict[str, int] = {}
        for gram in grams:
            for other in self._by_trigram.get(gram, ()):
                overlap[other] = overlap.get(other, 0) + 1
        best: Dict[str, Candidate] = {}
        for other, shared in overlap.items():
            similarity = shared / len(grams | trigrams(other))
            if similarity < self.fuzzy_threshold:
                continue
            for cand in self._from_aliases(kb, self._by_key[other], similarity):
                if cand.entity not in best or cand.match > best[cand.entity].match:
                    best[cand.entity] = cand
        return list(best.values())


@registry.misc("spacy-rsft.candidate_generator.v1")
def make_candidate_generator(
    normalize: bool = True, fuzzy: bool = False, fuzzy_threshold: float = 0.5,
    max_candidates: int = 50, expand_mentions: bool = True,
) -> Callable[[KnowledgeBase, Union[Span, str]], List[Candidate]]:
    """Registered as `spacy-rsft.candidate_generator.v1` (misc).

    normalize (bool): Fall back to case/punctuation/whitespace-normalized aliases.
    fuzzy (bool): Fall back to character-trigram similarity.
    fuzzy_threshold (float): Minimum Jaccard similarity of trigram sets.
    max_candidates (int): Cap on candidates per mention.
    expand_mentions (bool): Look a mention up as the longest mention of the same document
        that contains its words ("Simmons" as "Phil Simmons").
    RETURNS (Callable[[KnowledgeBase, Union[Span, str]], List[Candidate]]): The generator.
    """
    return CandidateGenerator(normalize, fuzzy, fuzzy_threshold, max_candidates, expand_mentions)


def doc_text_key(text: str) -> str:
    """A document's key that does not depend on tokenization or spacing: the hash of its
    whitespace-separated words, so a doc re-tokenized by `nlp.make_doc` finds its set.

    text (str): The document text.
    RETURNS (str): The key.
    """
    import hashlib

    return hashlib.sha1(" ".join(text.split()).encode("utf8")).hexdigest()


class DocCandidateGenerator:
    """Per-document candidate sets (e.g. the AIDA PPR sets), keyed by document and mention
    text; mentions of unknown documents fall back to the alias lookup.

    The file is JSON lines of {"doc": N, "text_key": K, "candidates": {mention: [ids]}},
    optionally with "priors": {mention: {id: p(e|m)}}. A doc is found by the leading number
    of `doc.user_data["doc_id"]` or, since predicted docs made by `nlp.make_doc` carry no
    user data, by `doc_text_key(doc.text)`. Priors come from the row's own "priors" where it
    names the mention, else from the KB's alias table where it has the (mention, entity)
    pair, else 0.

    A row's own priors are for training documents whose links the KB's prior was counted
    from: there p(e|m) has seen the answer (on AIDA train the count prior's top candidate is
    right 95% of the time, 72% once the document's own links are left out, 66% on testa),
    so a linker trained on it learns to trust the prior far more than it deserves on new
    text. Cross-fitted priors (each document's own links left out) keep training honest.
    """

    def __init__(self, path: str, fallback: CandidateGenerator) -> None:
        import os

        import srsly

        if not os.path.exists(path):
            # The path is resolved when the pipeline is built, relative to the working
            # directory, so a pipeline trained elsewhere may need it overridden.
            raise ValueError(Errors.E313.format(path=path, cwd=os.getcwd()))
        rows = list(srsly.read_jsonl(path))
        self.table = {int(row["doc"]): row for row in rows}
        self.by_text = {row["text_key"]: row for row in rows if row.get("text_key")}
        self.fallback = fallback

    def _doc_row(self, doc) -> Dict[str, Dict]:
        match = re.match(r"\s*(\d+)", str(doc.user_data.get("doc_id") or ""))
        if match and int(match.group(1)) in self.table:
            return self.table[int(match.group(1))]
        return self.by_text.get(doc_text_key(doc.text), {})

    def __call__(self, kb: KnowledgeBase, mention: Union[Span, str]) -> List[Candidate]:
        if isinstance(mention, Span):
            return self.for_doc(kb, [mention], others=mention.doc.ents)[0]
        return self.fallback(kb, mention)

    def for_doc(self, kb: KnowledgeBase, mentions: Sequence[Span],
                others: Optional[Sequence[Span]] = None) -> List[List[Candidate]]:
        """The document's sets where they name the mention; the fallback (with its mention
        expansion) for the rest."""
        if not mentions:
            return []
        row = self._doc_row(mentions[0].doc)
        table, own_priors = row.get("candidates", {}), row.get("priors", {})
        out: List[Optional[List[Candidate]]] = [self._from_table(kb, table, own_priors, m.text) for m in mentions]
        missing = [i for i, found in enumerate(out) if found is None]
        if missing:
            others = mentions if others is None else others
            looked_up = self.fallback.for_doc(kb, [mentions[i] for i in missing], others=others)
            for i, found in zip(missing, looked_up):
                out[i] = found
        return out

    def _from_table(self, kb: KnowledgeBase, table: Dict[str, List[str]],
                    own_priors: Dict[str, Dict[str, float]], text: str) -> Optional[List[Candidate]]:
        entities = table.get(text)
        if entities is None:
            return None
        priors = own_priors.get(text)
        if priors is None:
            priors = {c.entity_: float(c.prior_prob) for c in kb.get_alias_candidates(text)}
        found = [Candidate(e, priors.get(e, 0.0), 1.0) for e in entities if kb.contains_entity(e)]
        found.sort(key=lambda c: (-c.prior, c.entity))
        return found[: self.fallback.max_candidates]


@registry.misc("spacy-rsft.doc_candidates.v1")
def make_doc_candidate_generator(
    path: str, normalize: bool = True, fuzzy: bool = False, fuzzy_threshold: float = 0.5,
    max_candidates: int = 50, expand_mentions: bool = True,
) -> Callable[[KnowledgeBase, Union[Span, str]], List[Candidate]]:
    """Registered as `spacy-rsft.doc_candidates.v1` (misc): per-document candidate sets
    from `path`, with `spacy-rsft.candidate_generator.v1` as the fallback.

    path (str): JSONL of {"doc": N, "candidates": {mention: [entity ids]}}, optionally with
        "priors": {mention: {entity id: p(e|m)}} to use instead of the KB's for that
        document (e.g. priors that leave the document's own links out, for training docs).
    normalize, fuzzy, fuzzy_threshold, max_candidates, expand_mentions: As for the
        fallback generator (mentions the file has a set for are not expanded: the set is
        the document's own answer).
    RETURNS (Callable[[KnowledgeBase, Union[Span, str]], List[Candidate]]): The generator.
    """
    return DocCandidateGenerator(
        path, CandidateGenerator(normalize, fuzzy, fuzzy_threshold, max_candidates, expand_mentions)
    )
