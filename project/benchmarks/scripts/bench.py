"""What every benchmark script shares: the systems and scales of systems.yml, the effective
config of one run, its fingerprint, and where its files go.

Layout (relative to the benchmark project):
  systems.yml                        the systems, groups and scales
  systems/NAME.cfg                   a system: [benchmark] base + inputs, and the settings that differ
  configs/BASE.cfg                   the base configs
  corpus/DATA/...                    the data of a scale (DATA: full, tenth), from the `data` command
  training/SCALE/NAME/seedN/         one run: config.cfg, model-best, train.json, ... (not committed)
  results/SCALE/runs/SUITE/NAME/seedN.json  one run's result (committed: small; what the report reads)
  results/SCALE/speed.json           inference speed, round-robin
  results/SCALE/results.json|md      the collected results and the rendered report
"""
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import srsly
from spacy.tokens import DocBin
from thinc.api import Config

from spacy_rsft.io import atomic_output
from spacy_rsft.sampling.reader import replay_lines

ROOT = Path(__file__).resolve().parents[1]
# [paths] values that name outputs: where a run writes them does not change its result
OUTPUT_PATHS = ("stats", "log")


@dataclass
class System:
    name: str
    suite: str
    group: str
    title: str
    baseline: Optional[str] = None
    reference: Optional[str] = None
    speed: bool = False
    file: str = ""  # systems/FILE.cfg (the name, without @variant)
    variant: Optional[str] = None  # fills {variant} in the system file's inputs
    scales: Optional[List[str]] = None  # only at these scales (None: every scale that lists it)


def expand(line: Dict[str, Any], lines: Dict[str, Dict[str, Any]]) -> List[System]:
    """One systems.yml line as its systems: one, or one per variant (`variants: [a, b]` runs
    the same system file over several data sets, as NAME@a, NAME@b; a baseline or reference
    that has the same variants is taken with the same variant). `file: OTHER` makes the line
    a rerun of systems/OTHER.cfg under its own name, e.g. every seed again on one device."""
    line = dict(line)
    variants = line.pop("variants", None)
    file = line.pop("file", line["name"])
    if not variants:
        return [System(**line, file=file)]
    out = []
    for variant in variants:
        def pick(other: Optional[str]) -> Optional[str]:
            if other is None or variant not in (lines.get(other, {}).get("variants") or []):
                return other
            return f"{other}@{variant}"

        values = dict(line, name=f"{line['name']}@{variant}", title=f"{line['title']}, {variant}")
        values.update(baseline=pick(line.get("baseline")), reference=pick(line.get("reference")))
        out.append(System(**values, file=file, variant=variant))
    return out


@dataclass
class Scale:
    name: str
    data: str
    seeds: List[int]
    settings: Dict[str, Dict[str, Any]]
    speed_runs: int = 0
    systems: Optional[List[str]] = None
    suite_seeds: Dict[str, List[int]] = field(default_factory=dict)  # a suite's own seeds

    def seeds_of(self, suite: str) -> List[int]:
        return self.suite_seeds.get(suite, self.seeds)


@dataclass
class Benchmark:
    systems: Dict[str, System]
    groups: Dict[str, Dict[str, Any]]
    scales: Dict[str, Scale]
    root: Path = ROOT
    # label sets over NoiseBench's articles beyond systems.yml's (`--noisy-train`)
    own_label_sets: List[str] = field(default_factory=list)

    def scale(self, name: str) -> Scale:
        if name not in self.scales:
            raise SystemExit(f"Unknown scale {name!r}: systems.yml defines {', '.join(self.scales)}.")
        return self.scales[name]

    def systems_of(self, scale: Scale, suite: Optional[str] = None) -> List[System]:
        """The systems a scale runs, in systems.yml's order, optionally of one suite."""
        names = scale.systems if scale.systems is not None else list(self.systems)
        return [
            s for s in self.systems.values()
            if s.name in names and (suite is None or s.suite == suite) and (s.scales is None or scale.name in s.scales)
        ]


def load_benchmark(root: Path = ROOT, label_sets: Sequence[str] = ()) -> Benchmark:
    """systems.yml as systems and scales; `label_sets`: more label sets over NoiseBench's
    articles (the grid's `--noisy-train`), besides those that have results already."""
    spec = srsly.read_yaml(root / "systems.yml")
    listed = list(spec.get("noisy_label_sets") or [])
    own = sorted((set(label_sets) | set(label_sets_with_results(root))) - set(listed))
    for line in spec["systems"]:  # every system over the noisy sets runs over the user's sets too
        if own and line.get("variants") == listed:
            line["variants"] = listed + own
    lines = {line["name"]: line for line in spec["systems"]}
    systems = {s.name: s for line in spec["systems"] for s in expand(line, lines)}
    scales = {name: Scale(name=name, **values) for name, values in spec["scales"].items()}
    for scale in scales.values():  # a scale may list a line's name for all its variants
        if scale.systems is not None:
            scale.systems = [s.name for s in systems.values() if s.name in scale.systems or s.file in scale.systems]
    for system in systems.values():
        for other in (system.baseline, system.reference):
            if other is not None and other not in systems:
                raise SystemExit(f"systems.yml: {system.name} refers to {other!r}, which is not a system.")
        if not (root / "systems" / f"{system.file}.cfg").exists():
            raise SystemExit(f"systems.yml lists {system.file}, but systems/{system.file}.cfg does not exist.")
    return Benchmark(systems, spec["groups"], scales, root, own)


def label_sets_with_results(root: Path) -> List[str]:
    """The label sets that NoiseBench runs have results for (committed with them, so every
    clone sees the same systems)."""
    return sorted({path.name.split("@", 1)[1] for path in root.glob("results/*/runs/noisebench/*@*")})


def run_dir(root: Path, scale: str, system: str, seed: int) -> Path:
    return root / "training" / scale / system / f"seed{seed}"


def result_path(root: Path, scale: str, system: System, seed: int) -> Path:
    return root / "results" / scale / "runs" / system.suite / system.name / f"seed{seed}.json"


def read_json(path: Path) -> Optional[Dict]:
    return json.loads(path.read_text(encoding="utf8")) if path.exists() else None


def write_json(path: Path, data: Any) -> None:
    """Written atomically: an interrupted write never replaces a good file."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf8")


@dataclass
class Plan:
    """One run of one system: its effective config (base + system file), the overrides
    (scale settings, seed, inputs, output paths) and what identifies its result."""

    system: System
    scale: Scale
    seed: int
    kind: str  # "train" (spacy train) or "prior" (el-baseline, nothing trained)
    config: Config  # base + system file, not interpolated, [benchmark] removed
    inputs: Dict[str, Path]  # [paths] name -> file
    options: Dict[str, Any]  # the rest of [benchmark] (e.g. by = "prior", clean_train)
    overrides: Dict[str, Any] = field(default_factory=dict)
    # the clean version of a noisy train set ([benchmark] clean_train): noise detection
    clean_train: Optional[Path] = None

    def fingerprint(self) -> str:
        """sha256 of what decides the result: the interpolated effective config with the
        input files' content in place of their paths, the seed and the [benchmark] options.
        Output paths and file locations are left out, so moving a run does not rerun it."""
        config = Config(self.config).copy()
        for name in list(config.get("paths", {})):
            if name in self.inputs or name in OUTPUT_PATHS:
                config["paths"][name] = None  # before interpolation, so no copy keeps a path
        config = config.interpolate() if config else config
        identity = {
            "config": dict(config),  # json.dumps below sorts the keys: section order is no identity
            "seed": self.seed,
            "options": {k: v for k, v in sorted(self.options.items())},
            "inputs": {name: digest(path) for name, path in sorted(self.inputs.items())},
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode("utf8")).hexdigest()


STEP_SETTINGS = ("training.max_steps", "training.optimizer.learn_rate.total_steps", "training.eval_frequency")


def make_plan(bench: Benchmark, system: System, scale: Scale, seed: int, model: str) -> Plan:
    """The effective config of one run: systems/NAME.cfg's [benchmark] base config, merged
    with the rest of the system file, then the scale's settings for the suite (where the
    config has them), the seed, the model and the inputs."""
    spec = read_partial_config(bench.root / "systems" / f"{system.file}.cfg")
    options = dict(spec.pop("benchmark"))
    if system.variant is not None:
        options = {k: v.replace("{variant}", system.variant) if isinstance(v, str) else v for k, v in options.items()}
        options["inputs"] = {k: v.replace("{variant}", system.variant) for k, v in dict(options.get("inputs", {})).items()}
    inputs = {
        name: resolve_input(bench.root, scale, value.replace("{seed}", str(seed)))
        for name, value in dict(options.pop("inputs", {})).items()
    }
    kind = options.pop("kind", "train")
    base = options.pop("base", None)
    clean_train = resolve_input(bench.root, scale, options["clean_train"]) if "clean_train" in options else None
    if kind == "prior":
        return Plan(system, scale, seed, kind, Config(), inputs, options, clean_train=clean_train)
    config = Config().from_disk(bench.root / "configs" / base, interpolate=False).merge(spec)
    overrides = {key: value for key, value in scale.settings.get(system.suite, {}).items() if has_key(config, key)}
    # `steps_factor = N`: N times the scale's step budget (and evaluation interval), e.g. for
    # an anchor cheap enough to be given more updates than the systems it is compared with
    factor = int(options.pop("steps_factor", 1))
    for key in STEP_SETTINGS:
        if factor != 1 and key in overrides:
            overrides[key] = int(overrides[key]) * factor
    overrides["system.seed"] = seed
    if has_key(config, "paths.model"):
        overrides["paths.model"] = model
    for name, path in inputs.items():
        overrides[f"paths.{name}"] = str(path)
    config = Config().from_str(config.to_str(), overrides=overrides, interpolate=False)
    return Plan(system, scale, seed, kind, config, inputs, options, overrides, clean_train)


def read_partial_config(path: Path) -> Config:
    """A config that holds only some sections ([corpora.train] without [corpora]): the
    parent sections it leaves out are added empty, as the config parser needs them."""
    text = path.read_text(encoding="utf8")
    headers = re.findall(r"^\[([^\]]+)\]", text, flags=re.M)
    parents = []
    for header in headers:
        parts = header.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent not in headers and parent not in parents:
                parents.append(parent)
    text = "".join(f"[{p}]\n\n" for p in parents) + text
    return Config().from_str(text, interpolate=False)


def resolve_input(root: Path, scale: Scale, value: str) -> Path:
    """An input file: `{data}/conll/train.spacy` is in the scale's corpus folder
    (corpus/full, corpus/tenth); `{training}/NAME/seed0/...` is another run's output at the
    same scale (training/full/...: that run must have finished first), `{results}/runs/...`
    a file run.py writes beside another run's result (results/full/runs/...: committed, so
    it is there on any checkout once that run is on record); anything else is relative to
    corpus/."""
    for folder in ("training", "results"):
        if value.startswith(f"{{{folder}}}/"):
            return root / folder / scale.name / value[len(folder) + 3:]
    return root / "corpus" / value.replace("{data}", scale.data)


def missing_run_outputs(root: Path, plan: "Plan") -> List[Path]:
    """The inputs of a plan that other runs write and that are not there yet: the file is
    missing, or the run that writes it has not finished (train.py writes its train.json last;
    a stats file is rewritten epoch by epoch while the run trains; a file beside a result is
    written, atomically, once the run has finished)."""
    training = root / "training"
    missing = []
    for path in plan.inputs.values():
        if root / "results" in path.parents and not path.exists():
            missing.append(path)
        if training not in path.parents:
            continue
        # the run folder is training/SCALE/NAME/seedN, however deep in it the file is
        finished = training.joinpath(*path.relative_to(training).parts[:3]) / "train.json"
        if not path.exists() or not finished.exists() or finished.stat().st_mtime < path.stat().st_mtime:
            missing.append(path)
    return missing


def unit_entity_flags(stats: Path) -> Optional[List[int]]:
    """The entity flags of a stats file's unit table (STATS.units.json), if it is there."""
    units = read_json(stats.with_name(stats.stem + ".units.json"))
    return None if units is None else units["entity"]


def write_replay(out: Path, target: Path) -> Optional[Path]:
    """A run's stats cut to what a control replays (`replay_lines`), written beside its
    result as seedN.replay.jsonl: a few KB, committed with the result, so the control can
    run on another checkout, after the training folder is gone. None if it has no stats."""
    stats = out / "sampler_stats.jsonl"
    if not stats.exists():
        return None
    path = target.with_suffix(".replay.jsonl")
    lines = replay_lines(list(srsly.read_jsonl(stats)), unit_entity_flags(stats))
    with atomic_output(path) as tmp:
        tmp.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf8")
    return path


def has_key(config: Config, dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def digest(path: Path) -> str:
    """The content of an input: a DocBin's texts and entities (its bytes vary with Python's
    string hashing), a run's stats file's acceptances, a directory's files (a KB), or a
    file's bytes."""
    if not path.exists():
        if "training" in path.parts or "results" in path.parts:
            raise SystemExit(f"Input {path} does not exist: it is another run's output; run that system and seed first.")
        raise SystemExit(f"Input {path} does not exist: run the benchmark's `data` command (and `kb` for the linkers).")
    md5 = hashlib.md5()
    if path.suffix == ".jsonl" and ("training" in path.parts or "results" in path.parts):
        # a run's stats or its replay file, which a control replays: what it replays (the
        # units and mean acceptance of every epoch), so both forms of one run digest alike
        for line in replay_lines(list(srsly.read_jsonl(path)), unit_entity_flags(path)):
            md5.update(json.dumps([line["epoch"], line.get("proposed"), line["mean_acceptance"]], sort_keys=True).encode("utf8"))
    elif path.suffix == ".spacy":
        import spacy

        for doc in DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab):
            md5.update(doc.text.encode("utf8"))
            md5.update(repr([(e.start_char, e.end_char, e.label_, e.kb_id_) for e in doc.ents]).encode("utf8"))
    elif path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            md5.update(str(item.relative_to(path)).encode("utf8"))
            md5.update(item.read_bytes())
    else:
        md5.update(path.read_bytes())
    return md5.hexdigest()
