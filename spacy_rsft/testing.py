"""Build a tiny random BERT on disk, for tests and quick config checks (no download).

`python -m spacy_rsft tiny-model DIR` writes one; it loads by path like any model.
"""
import string
from pathlib import Path
from typing import Union

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
COMMON_WORDS = (
    "the a an of to in and is was for on with by at from as that this it he she they we "
    "you i be are has have had not but or new york london paris berlin john mary smith "
    "apple google microsoft company city river president said will would can could"
).split()


def _vocab() -> list:
    # WordPiece needs single characters (and their ## continuations) to cover any text;
    # the list must be de-duplicated or the tokenizer's ids shift.
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = SPECIAL_TOKENS + chars + ["##" + c for c in chars] + COMMON_WORDS
    return list(dict.fromkeys(pieces))


def make_tiny_bert(path: Union[str, Path], seed: int = 0, dropout: float = 0.1) -> Path:
    """Write a 2-layer, 64-wide, randomly initialized uncased BERT to `path`.

    path (Union[str, Path]): Output directory (created).
    seed (int): Seed of the random weights.
    dropout (float): The transformer's own dropout (BERT's default 0.1; 0 makes training
        updates deterministic, for tests that compare two of them).
    RETURNS (Path): The directory.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = _vocab()
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    BertModel(config).save_pretrained(str(path))
    return path
