"""The model card of an export (`tfbert.checkpoints.model_card`), in `assets.extra/README.md`: the
checkpoint, task, labels, tokenizer options, and every signature with its inputs and outputs."""

import pathlib

from tfbert.checkpoints.model_card import ModelCard, model_facts, tfbert_version, tokenizer_facts
from tfbert.serving.example_signatures import METHOD_NAMES

CARD_PATH = pathlib.Path("assets.extra") / "README.md"
PREDICT_METHOD = "tensorflow/serving/predict"


def _shape(shape):
    return "[" + ", ".join("batch" if i == 0 and d is None else "?" if d is None else str(d)
                           for i, d in enumerate(shape)) + "]"


def signature_rows(signatures):
    """Each signature's method name, inputs and outputs, as the card lists them (traced functions)."""
    rows = []
    for name, function in sorted(signatures.items()):
        concrete = function.get_concrete_function()
        inputs = [(spec.name, spec.dtype.name, _shape(spec.shape)) for spec in function.input_signature]
        outputs = [(key, value.dtype.name, _shape(value.shape)) for key, value in sorted(concrete.structured_outputs.items())]
        rows.append({"name": name, "method": METHOD_NAMES.get(name, PREDICT_METHOD), "inputs": inputs, "outputs": outputs})
    return rows


def export_card(name, task, labels, tokenizer, bert_config, precision, signatures, base_model=None, **fields):
    """The export's `ModelCard`; `fields` (training, command, base_model) as the caller knows them."""
    return ModelCard(name=name, task=task, base_model=base_model, labels=list(labels or []),
                     tokenizer=tokenizer_facts(tokenizer), model=model_facts(bert_config, precision),
                     signatures=signature_rows(signatures), version=tfbert_version(), **fields)


def write_export_card(export_dir, card):
    """Writes the card to `export_dir/assets.extra/README.md`; returns its path."""
    folder = pathlib.Path(export_dir) / CARD_PATH.parent
    folder.mkdir(exist_ok=True)
    return card.write(folder)
