"""Where a trained rsft_entity_linker loses its in-KB mentions, on gold mentions.

Each mention whose gold entity is in the KB falls in one class: the gold entity is not among
its candidates (the candidate generator's loss); the linker ranks it first and links it; ranks
it first but predicts NIL (the NIL threshold's loss); ranks another candidate first where the
prior's top candidate was right (the model overrode the prior); or both were wrong. Wrong
ranks are counted per NER label and per pair of KB types (the gold entity's, the one ranked
first: "GPE<UNK" is a place ranked below an untyped entity such as a national team, what
`context_type` is for), and the first overrides are listed.

usage: python scripts/el_errors.py MODEL_DIR DATA.spacy [--output errors.json]
e.g.   python scripts/el_errors.py training/el_convergence/el_f_all_cv_doc/seed0/model-best \
           corpus/full/aida/testa.spacy --output results/el_convergence/el_errors.json
"""
import argparse
import collections
import json
from typing import Dict, List

import spacy
from spacy.tokens import Doc, DocBin

from bench import write_json
from el_evaluate import link_gold_mentions, with_gold_mentions
from spacy_rsft.annotations import NIL


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--output", default=None)
    parser.add_argument("--examples", type=int, default=30)
    args = parser.parse_args()
    nlp = spacy.load(args.model)
    refs = list(DocBin().from_disk(args.data).get_docs(nlp.vocab))
    predicted = link_gold_mentions(nlp, [with_gold_mentions(nlp, ref) for ref in refs])
    result = classify(nlp.get_pipe("rsft_entity_linker"), refs, predicted, args.examples)
    print(json.dumps({k: v for k, v in result.items() if k != "overrides"}, indent=1))
    for row in result["overrides"]:
        print(row)
    if args.output:
        write_json(args.output, result)


def classify(linker, refs: List[Doc], predicted: List[Doc], n_examples: int) -> Dict:
    counts: collections.Counter = collections.Counter()
    wrong_by_label: collections.Counter = collections.Counter()
    wrong_by_types: collections.Counter = collections.Counter()
    types = linker.entity_table.types
    overrides: List[list] = []
    for ref, doc in zip(refs, predicted):
        gold = {(e.start_char, e.end_char): e.kb_id_ for e in ref.ents}
        for ent, candidates in zip(doc.ents, linker._doc_candidates(list(doc.ents))):
            answer = gold.get((ent.start_char, ent.end_char))
            if not answer or answer == NIL:
                continue
            counts["in_kb"] += 1
            ids = [c.entity for c in candidates or []]
            if answer not in ids:
                counts["gold_not_a_candidate"] += 1
                continue
            ranked = ent._.kb_candidates or []
            if ranked and ranked[0][0] == answer:
                counts["ranked_first_predicted_nil" if ent.kb_id_ == NIL else "ranked_first_linked"] += 1
                continue
            prior_top = max(candidates, key=lambda c: c.prior).entity
            kind = "prior_right_model_wrong" if prior_top == answer else "prior_and_model_wrong"
            counts[kind] += 1
            wrong_by_label[f"{kind} {ent.label_}"] += 1
            if ranked:
                wrong_by_types[f"{types.get(answer, '?')}<{types.get(ranked[0][0], '?')}"] += 1
            if kind == "prior_right_model_wrong" and len(overrides) < n_examples:
                overrides.append([ent.text, ent.label_, answer, ranked[0][0] if ranked else None])
    shares = {k: round(v / max(1, counts["in_kb"]), 4) for k, v in counts.items() if k != "in_kb"}
    return {"counts": dict(counts), "shares": shares, "wrong_by_label": dict(sorted(wrong_by_label.items())),
            "wrong_by_types": dict(wrong_by_types.most_common()), "overrides": overrides}


if __name__ == "__main__":
    main()
