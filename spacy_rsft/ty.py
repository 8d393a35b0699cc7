"""The contract between the rejection-sampling reader and the components it trains, as
`typing.Protocol`s (spaCy keeps its own in `spacy/ty.py`).

The reader checks a component with `isinstance(proc, LossRecorder)` etc., so a third-party
component takes part by implementing the methods; it needs no base class. `rsft_ner` and
`rsft_entity_linker` implement the first three; for units finer than the example (`unit =
"sentence"` or `"span"`) the reader takes token losses: `rsft_ner` records and computes them
(TokenLossRecorder, TokenLossScorer), `rsft_entity_linker` records and computes each
mention's loss on its tokens (TokenLossRecorder, TokenLossScorer).

A unit the reader rejects inside an example is masked (its annotation set missing); the masked
reference keeps the unmasked one under `UNMASKED_KEY` in its `user_data`, so a component can
record the masked tokens' losses against their labels from the same forward pass, with no
gradient (`unmasked_reference`).
"""
from typing import Dict, Iterable, List, Protocol, runtime_checkable

import numpy
from spacy.tokens import Doc
from spacy.training import Example

# Doc.user_data key of a masked example's reference: the reference before masking.
UNMASKED_KEY = "rsft_unmasked_reference"


def unmasked_reference(example: Example) -> Doc:
    """The reference of an example before the reader masked units of it (the reference
    itself when nothing was masked): the labels a masked unit's loss is recorded against.

    example (Example): A training example.
    RETURNS (Doc): The unmasked reference.
    """
    return example.reference.user_data.get(UNMASKED_KEY, example.reference)


@runtime_checkable
class LossRecorder(Protocol):
    """Records each reader-tagged example's loss during its own `update`, for
    `scoring = "cached"` (no extra forward pass)."""

    def pop_recorded_losses(self) -> Dict[int, float]:
        """Hand over (and forget) the losses recorded since the last call.

        RETURNS (Dict[int, float]): Example id (`spacy_rsft.util.get_example_id`) -> loss.
        """
        ...


@runtime_checkable
class ExampleLossScorer(Protocol):
    """Gives each example's loss under the current weights, for `scoring = "fresh"`.
    Components without it are scored by 1 - their main score."""

    def get_example_losses(self, examples: Iterable[Example]) -> numpy.ndarray:
        """Each example's loss, without a gradient; may annotate the predicted docs, as a
        later component in the pipeline expects.

        examples (Iterable[Example]): The examples.
        RETURNS (ndarray): One loss per example, NaN where there is nothing to score.
        """
        ...


@runtime_checkable
class SkipCounter(Protocol):
    """Counts what training left out or changed, reported in the reader's stats
    (`component_skips`)."""

    def skip_counts(self) -> Dict[str, int]:
        """Cumulative counts since the component was created.

        RETURNS (Dict[str, int]): Count by reason.
        """
        ...


@runtime_checkable
class TokenLossRecorder(Protocol):
    """Records the loss of every reference token of each reader-tagged example during its
    own `update`, so the reader can score sentences and spans (`scoring = "cached"`)."""

    def pop_recorded_token_losses(self) -> Dict[int, numpy.ndarray]:
        """Hand over (and forget) the token losses recorded since the last call.

        RETURNS (Dict[int, ndarray]): Example id -> one loss per reference token, NaN where
            the token was not scored (masked, misaligned, no gold tag).
        """
        ...


@runtime_checkable
class TokenLossScorer(Protocol):
    """Gives every reference token's loss under the current weights (`scoring = "fresh"`
    with units finer than the example)."""

    def get_token_losses(self, examples: Iterable[Example]) -> List[numpy.ndarray]:
        """One loss per reference token of each example, without a gradient.

        examples (Iterable[Example]): The examples.
        RETURNS (List[ndarray]): The losses, NaN where there is nothing to score.
        """
        ...
