"""Model cards: the `README.md` that says what a saved model is, in Hugging Face's format (YAML front
matter, then Markdown), generated with every Hugging Face-layout save and every export.

    ---
    base_model: sentence-transformers/all-MiniLM-L6-v2
    library_name: tfbert
    pipeline_tag: text-classification
    model-index: ...          (dev metrics, when tfbert trained the model)
    ---
    # <name>
    ## Model           checkpoint, task, labels, tokenizer options, max length, size, precision
    ## Training        data, settings, best epoch and its dev metrics (when tfbert trained it)
    ## Signatures      each signature's method, inputs and outputs (exports)
    ## How it was made the command, the tfbert version

The front matter is `huggingface_hub.ModelCardData`'s, so the hub and `huggingface_hub.ModelCard.load`
read it. An export keeps its card in `assets.extra/`, which TF Serving does not read.
"""

import dataclasses
import importlib.metadata
import pathlib
import shlex
import sys

from huggingface_hub import EvalResult, ModelCardData

from tfbert.checkpoints.presets import PRESETS

CARD_FILE = "README.md"
PIPELINE_TAGS = {  # tfbert's task names: the hub's pipeline tag
    "encoder": "feature-extraction", "classification": "text-classification",
    "multi_label": "text-classification", "regression": "text-classification",
    "text-classification": "text-classification", "token-classification": "token-classification",
    "question-answering": "question-answering", "fill-mask": "fill-mask", "pretraining": "fill-mask",
}
ARCHITECTURE_TASKS = {  # a Hugging Face folder's architecture: its task
    "BertModel": "encoder", "BertForSequenceClassification": "text-classification",
    "BertForTokenClassification": "token-classification", "BertForQuestionAnswering": "question-answering",
    "BertForMaskedLM": "fill-mask", "BertForPreTraining": "pretraining",
}
_cli_command = None  # the command line, when the CLI runs


def tfbert_version():
    """The installed tfbert's version, or None when it is not installed (a source tree on sys.path)."""
    try:
        return importlib.metadata.version("tfbert")
    except importlib.metadata.PackageNotFoundError:
        return None


def tokenizer_facts(tokenizer):
    """A `BertTokenizerLayer`'s options, as a card shows them."""
    facts = {"do_lower_case": tokenizer.do_lower_case, "strip_accents": tokenizer.strip_accents,
             "tokenize_chinese_chars": tokenizer.tokenize_chinese_chars, "max_length": tokenizer.max_length,
             "padding": tokenizer.padding, "vocabulary": f"{tokenizer.vocabulary_size} WordPiece tokens"}
    if tokenizer.added_tokens:
        facts["added tokens"] = ", ".join(f"`{token['content']}`" for token in tokenizer.added_tokens)
    return facts


def model_facts(config, precision="float32"):
    """A BERT config's size (and the precision it computes in), as a card shows them."""
    facts = {"layers": config.num_hidden_layers, "hidden size": config.hidden_size,
             "attention heads": config.num_attention_heads, "intermediate size": config.intermediate_size,
             "max position embeddings": config.max_position_embeddings, "precision": precision}
    if getattr(config, "pruned_heads", None):
        facts["pruned heads"] = dict(config.pruned_heads)
    return facts


def config_labels(config, task):
    """The label names of a classification or tagging config, in id order; [] for other tasks."""
    if task not in ("text-classification", "token-classification"):
        return []
    return [config.id2label[i] for i in range(config.num_labels)]


def set_cli_command(argv):
    """Records the command line the CLI runs (`tfbert ...`), for the cards of what it writes."""
    global _cli_command
    _cli_command = "tfbert " + shlex.join(argv)


def made_by(function, **arguments):
    """How a saved model was made: the CLI's command line, else the Python call `function(arguments)`."""
    if _cli_command is not None:
        return _cli_command
    shown = ", ".join(f"{name}={value!r}" for name, value in arguments.items() if value is not None)
    return f"{function}({shown})  # from {shlex.quote(sys.argv[0]) if sys.argv and sys.argv[0] else 'Python'}"


def hub_id(checkpoint_name):
    """The Hugging Face hub id of a checkpoint name (a preset's source, or an id itself), else None."""
    if checkpoint_name in PRESETS:
        return PRESETS[checkpoint_name].get("hub_id")
    name = str(checkpoint_name or "")
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return name
    return None


@dataclasses.dataclass
class ModelCard:
    """What a saved model is. Render it with `render()`, write it with `write(folder)`.

    Args:
        name: str. The model's name (the export's or folder's).
        task: str. tfbert's task name (see PIPELINE_TAGS).
        base_model: str. The checkpoint it was built from (preset, folder or hub id).
        labels: list of str. Label names in id order, if any.
        tokenizer: dict. Tokenizer options (do_lower_case, strip_accents, ..., max_length).
        model: dict. Size and precision: layers, hidden size, heads, vocabulary, ...
        training: dict or None. {"data": {...}, "settings": {...}, "best_epoch", "epochs_run", "monitor",
            "dev_metrics": {...}} when tfbert trained the model.
        signatures: list of dict or None. {"name", "method", "inputs", "outputs"} (exports), each input
            and output a (name, dtype, shape) triple.
        command: str. How it was made (`made_by`).
        version: str. tfbert's version.
    """

    name: str
    task: str
    base_model: str = None
    labels: list = None
    tokenizer: dict = None
    model: dict = None
    training: dict = None
    signatures: list = None
    command: str = None
    version: str = None

    def card_data(self):
        """The front matter, as `huggingface_hub.ModelCardData`."""
        pipeline_tag = PIPELINE_TAGS.get(self.task)
        eval_results = None
        training = self.training or {}
        if training.get("dev_metrics"):
            dataset = training.get("data", {}).get("dev") or "dev"
            eval_results = [EvalResult(task_type=pipeline_tag or self.task, dataset_type="custom", dataset_name=str(dataset),
                                       dataset_split="dev", metric_type=name.removeprefix("val_"),
                                       metric_value=round(float(value), 6), metric_name=name)
                            for name, value in training["dev_metrics"].items()]
        return ModelCardData(library_name="tfbert", base_model=hub_id(self.base_model), pipeline_tag=pipeline_tag,
                             tags=["tfbert", "tensorflow", "bert", "tf-serving"], model_name=self.name,
                             eval_results=eval_results)

    def render(self):
        """The card's text: front matter and Markdown."""
        lines = ["---", self.card_data().to_yaml(), "---", "", f"# {self.name}", ""]
        base = self.base_model or "a BERT checkpoint"
        lines += [f"A BERT {self.task} model from `{base}`, made by tfbert (TensorFlow, served from raw strings).", ""]
        lines += ["## Model", "", "| | |", "| --- | --- |", f"| task | {self.task} |", f"| base checkpoint | `{base}` |"]
        if self.labels:
            lines.append(f"| labels ({len(self.labels)}, in id order) | {', '.join(f'`{label}`' for label in self.labels)} |")
        for key, value in (self.model or {}).items():
            lines.append(f"| {key} | {value} |")
        for key, value in (self.tokenizer or {}).items():
            lines.append(f"| tokenizer {key} | {value} |")
        lines.append("")
        if self.training:
            lines += self._training_lines()
        if self.signatures:
            lines += self._signature_lines()
        lines += ["## How it was made", "", "```", self.command or "unknown", "```", "",
                  f"tfbert {self.version or '(not installed)'}", ""]
        return "\n".join(lines)

    def _training_lines(self):
        training = self.training
        lines = ["## Training", "", "| | |", "| --- | --- |"]
        for key, value in training.get("data", {}).items():
            lines.append(f"| {key} | {value} |")
        for key, value in training.get("settings", {}).items():
            lines.append(f"| {key} | {value} |")
        if training.get("best_epoch"):
            lines.append(f"| best epoch | {training['best_epoch']} of {training.get('epochs_run', '?')} run, "
                         f"by {training.get('monitor')} |")
        where = "dev, best epoch" if training.get("best_epoch") else "held out"
        for name, value in training.get("dev_metrics", {}).items():
            lines.append(f"| {name} ({where}) | {value:.4f} |")
        return lines + [""]

    def _signature_lines(self):
        lines = ["## Signatures", "", "| signature | method | inputs | outputs |", "| --- | --- | --- | --- |"]
        for signature in self.signatures:
            inputs = ", ".join(f"`{name}` {dtype} {shape}" for name, dtype, shape in signature["inputs"])
            outputs = ", ".join(f"`{name}` {dtype} {shape}" for name, dtype, shape in signature["outputs"])
            lines.append(f"| `{signature['name']}` | {signature['method']} | {inputs} | {outputs} |")
        return lines + [""]

    def write(self, folder):
        """Writes the card as `folder/README.md`; returns its path."""
        path = pathlib.Path(folder) / CARD_FILE
        path.write_text(self.render(), encoding="utf-8")
        return path


def checkpoint_card(folder, config, tokenizer, architectures, base_model=None, **fields):
    """The card of a Hugging Face folder written by tfbert: its task, labels, size and tokenizer from the
    config, `fields` (training, command, name, ...) as given."""
    task = ARCHITECTURE_TASKS.get(architectures[0], architectures[0]) if architectures else "encoder"
    fields.setdefault("name", pathlib.Path(folder).resolve().name)
    fields.setdefault("command", made_by("tfbert.checkpoints.writer.write_checkpoint"))
    return ModelCard(task=task, base_model=base_model, labels=config_labels(config, task), tokenizer=tokenizer_facts(tokenizer),
                     model=model_facts(config), version=tfbert_version(), **fields)
