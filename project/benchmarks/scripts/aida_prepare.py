"""Turn the AIDA CoNLL-YAGO files in DATA_DIR/aida into build-kb inputs and per-document
candidate sets.

usage: python scripts/aida_prepare.py DATA_DIR OUTPUT_DIR

Writes to OUTPUT_DIR:
- aida_train.jsonl, aida_testa.jsonl: the AIDA documents with each gold `wiki_title` replaced by
  the KB's title of the same Wikipedia page (joined on `wiki_id`; the old title is kept as
  `aida_title`). The AIDA gold names pages by their 2011 titles, the candidate pages by later
  ones: 196 pages were renamed ("Florida Marlins" -> "Miami Marlins", "People's Republic of
  China" -> "China"), and 20 old titles are now another page's title ("Preston" names the town
  in the gold and a different page in the candidates). Joined on titles, 146 linked testa
  mentions (3%) had a gold entity no candidate could equal, and 20 pages were confused with
  another. Convert these files, not the originals.
- entities.tsv: the candidate pages (id = Wikipedia title with spaces, as in the AIDA gold;
  frequency = in-links; type).
- aliases.tsv: mention -> title with `prob`, the train prior p(e|m) backed off to in-links:
  prob ∝ train count + in-link share (< 1), so the most frequent train link wins and
  in-links break ties and cover mentions unseen in train.
- doc_candidates.jsonl: {"doc": N, "text_key": K, "candidates": {mention: [titles]}} from the PPR
  candidate sets (Pershina et al. 2015). A mention without its own row borrows the
  candidates of the longer mention of the same document that contains it ("Simmons" ->
  "Phil Simmons").
- doc_candidates_cv.jsonl: the same sets, and for every training document "priors" that
  leave the document's own links out of the train counts (cross-fitted p(e|m)). The counts
  include each training document's own answer: their top candidate is right for 95% of the
  training mentions but for 72% once the document is left out (66% on testa), so a linker
  trained on the plain priors learns to trust them more than they deserve on new text.
"""
import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set

import srsly

csv.field_size_limit(10**8)


def doc_number(doc_id: str) -> int:
    match = re.match(r"\s*(\d+)", doc_id)
    if match is None:
        raise ValueError(f"AIDA doc id {doc_id!r} does not start with its number")
    return int(match.group(1))


def read_tsv(path: Path):
    with path.open(encoding="utf8", newline="") as file_:
        yield from csv.DictReader(file_, delimiter="\t", quoting=csv.QUOTE_NONE)


def text_key(text: str) -> str:
    # Must match spacy_rsft.kb.candidates.doc_text_key.
    from spacy_rsft.kb.candidates import doc_text_key

    return doc_text_key(text)


def gold_titles(splits: Dict[str, List[Dict]], page_titles: Dict[str, str]) -> Dict[str, str]:
    """AIDA gold title -> the KB's title of the same page (by `wiki_id`), over both splits;
    a title whose page is not among the candidate pages maps to itself."""
    renamed: Dict[str, str] = {}
    for docs in splits.values():
        for doc in docs:
            for mention in doc["mentions"]:
                title = mention.get("wiki_title")
                if not title:
                    continue
                kb_title = page_titles.get(str(mention.get("wiki_id")), title)
                if renamed.setdefault(title, kb_title) != kb_title:
                    raise SystemExit(f"aida_prepare: the AIDA title {title!r} names two pages ({renamed[title]!r}, {kb_title!r})")
    return renamed


def write_renamed(docs: List[Dict], target: Path, renamed: Dict[str, str]) -> int:
    """Replace the docs' gold titles by the KB's (in place) and write them; returns how many
    mentions changed."""
    changed = 0
    with target.open("w", encoding="utf8") as file_:
        for doc in docs:
            for mention in doc["mentions"]:
                title = mention.get("wiki_title")
                if title and renamed.get(title, title) != title:
                    mention["aida_title"], mention["wiki_title"] = title, renamed[title]
                    changed += 1
            file_.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return changed


def borrow(mention: str, own: Dict[str, List[str]]) -> List[str]:
    """Candidates of the longest mention in the document that contains `mention` as
    whole words; empty when there is none."""
    if mention in own:
        return own[mention]
    pattern = re.compile(r"(^|\s)" + re.escape(mention) + r"($|\s)")
    longer = [m for m in own if len(m) > len(mention) and pattern.search(m)]
    return own[max(longer, key=len)] if longer else []


def prior_table(entities: List[str], counts: Dict[str, int], title_inlinks: Dict[str, int]) -> Dict[str, float]:
    """p(e|m) over an alias's entities (sorted): train count + in-link share, normalized,
    rounded down so that the probabilities never sum above 1."""
    total_links = sum(title_inlinks.get(e, 0) for e in entities) or 1
    raw = {e: counts.get(e, 0) + title_inlinks.get(e, 0) / total_links for e in entities}
    norm = sum(raw[e] for e in entities) or 1.0
    return {e: int(raw[e] / norm * 1e6) / 1e6 for e in entities}


def left_out_priors(links: Dict[str, Dict[str, int]], train_counts: Dict[str, Dict[str, int]],
                    alias_entities: Dict[str, Set[str]], title_inlinks: Dict[str, int]) -> Dict[str, Dict[str, float]]:
    """A training document's cross-fitted priors: for each mention text it links, p(e|m)
    from the train counts less the document's own links."""
    priors = {}
    for mention, own in links.items():
        counts = {e: c - own.get(e, 0) for e, c in train_counts.get(mention, {}).items()}
        # the counts file and the documents count the same links: a document cannot own more
        if any(c < 0 for c in counts.values()) or set(own) - set(train_counts.get(mention, {})):
            raise SystemExit(f"aida_prepare: the train counts of {mention!r} do not include a document's own links {own}")
        priors[mention] = prior_table(sorted(alias_entities[mention]), counts, title_inlinks)
    return priors


def main(data_dir: str, output_dir: str) -> None:
    aida = Path(data_dir) / "aida"
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pages = {row["page_id"]: row for row in read_tsv(aida / "candidate_pages.tsv")}
    # The candidate file writes titles with underscores; the AIDA gold ids and the alias
    # counts with spaces. The KB uses the gold form.
    for row in pages.values():
        row["wiki_title"] = row["wiki_title"].replace("_", " ")
    title_inlinks = {row["wiki_title"]: int(row["in_links"] or 0) for row in pages.values()}
    splits = {split: list(srsly.read_jsonl(aida / f"aida_conll_yago_{split}.jsonl")) for split in ("train", "testa")}
    renamed = gold_titles(splits, {page_id: row["wiki_title"] for page_id, row in pages.items()})
    changed = {split: write_renamed(docs, out / f"aida_{split}.jsonl", renamed) for split, docs in splits.items()}
    with (out / "entities.tsv").open("w", encoding="utf8", newline="") as file_:
        writer = csv.writer(file_, delimiter="\t")
        writer.writerow(["id", "name", "frequency", "type"])
        for row in pages.values():
            writer.writerow([row["wiki_title"], row["wiki_title"], row["in_links"] or 0, row["predicted_type"]])

    per_doc: Dict[int, Dict[str, List[str]]] = defaultdict(dict)
    text_keys: Dict[int, str] = {}
    alias_entities: Dict[str, Set[str]] = defaultdict(set)
    for row in read_tsv(aida / "aida_mention_candidates.tsv"):
        titles = [pages[p]["wiki_title"] for p in row["candidate_page_ids"].split(";") if p in pages]
        per_doc[int(row["doc"])][row["mention"]] = titles
        alias_entities[row["mention"]].update(titles)
    train_counts: Dict[str, Dict[str, int]] = defaultdict(dict)
    for row in read_tsv(aida / "aida_train_alias_counts.tsv"):
        title = renamed.get(row["wiki_title"], row["wiki_title"])
        if title in title_inlinks:
            counts = train_counts[row["mention"]]
            counts[title] = counts.get(title, 0) + int(row["count"])
            alias_entities[row["mention"]].add(title)

    # Short mentions of each split, resolved against their document's candidate rows; the
    # training documents' own links (mention -> title -> count), to leave out of their priors.
    train_links: Dict[int, Dict[str, Dict[str, int]]] = {}
    for split, docs in splits.items():
        for doc in docs:
            number = doc_number(doc["doc_id"])
            text_keys[number] = text_key(" ".join(doc["tokens"]))
            own = per_doc[number]
            links: Dict[str, Dict[str, int]] = defaultdict(dict)
            for mention in doc["mentions"]:
                if mention["text"] not in own:
                    own[mention["text"]] = borrow(mention["text"], own)
                    alias_entities[mention["text"]].update(own[mention["text"]])
                title = mention.get("wiki_title")
                if title and title in title_inlinks:
                    links[mention["text"]][title] = links[mention["text"]].get(title, 0) + 1
            if split == "train":
                train_links[number] = links

    with (out / "aliases.tsv").open("w", encoding="utf8", newline="") as file_:
        writer = csv.writer(file_, delimiter="\t")
        writer.writerow(["alias", "entity", "prob"])
        for alias, entities in sorted(alias_entities.items()):
            if not alias.strip() or not entities:
                continue
            entities = sorted(entities)  # fixed order: float sums are then reproducible
            for entity, prob in prior_table(entities, train_counts[alias], title_inlinks).items():
                writer.writerow([alias, entity, f"{prob:.6f}"])
    with (out / "doc_candidates.jsonl").open("w", encoding="utf8") as plain, \
            (out / "doc_candidates_cv.jsonl").open("w", encoding="utf8") as cross_fitted:
        for number in sorted(per_doc):
            row = {"doc": number, "text_key": text_keys.get(number), "candidates": per_doc[number]}
            plain.write(json.dumps(row) + "\n")
            if number in train_links:
                row["priors"] = left_out_priors(train_links[number], train_counts, alias_entities, title_inlinks)
            cross_fitted.write(json.dumps(row) + "\n")
    print(f"Wrote {len(pages)} entities, {len(alias_entities)} aliases, {len(per_doc)} documents' candidates to {out}; "
          f"gold titles of renamed pages replaced in {changed['train']} train and {changed['testa']} testa mentions")


if __name__ == "__main__":
    main(*sys.argv[1:3])
