"""The model card of an export (`tfbert.checkpoints.model_card`), in `assets.extra/README.md`: the
checkpoint, task, labels, tokenizer options, and every signature with its inputs and outputs."""

import pathlib

import tensorflow as tf

from tfbert.checkpoints.model_card import ModelCard, model_facts, tfbert_version, tokenizer_facts
from tfbert.serving.versions import read_saved_model

CARD_PATH = pathlib.Path("assets.extra") / "README.md"


def _shape(tensor_shape):
    if tensor_shape.unknown_rank:
        return "[?]"
    sizes = [dim.size for dim in tensor_shape.dim]
    return "[" + ", ".join("batch" if i == 0 and d < 0 else "?" if d < 0 else str(d) for i, d in enumerate(sizes)) + "]"


def _dtype(tensor_info):
    return tf.dtypes.as_dtype(tensor_info.dtype).name


def signature_rows(export_dir):
    """Each signature's method name, inputs and outputs as the saved `saved_model.pb` holds them (read
    back from the file, which costs nothing, where asking the functions would trace them again)."""
    proto = read_saved_model(export_dir)
    (meta_graph,) = proto.meta_graphs
    rows = []
    for name, signature in sorted(meta_graph.signature_def.items()):
        if name.startswith("__"):  # TensorFlow's own __saved_model_init_op
            continue
        rows.append({"name": name, "method": signature.method_name,
                     "inputs": [(key, _dtype(value), _shape(value.tensor_shape)) for key, value in sorted(signature.inputs.items())],
                     "outputs": [(key, _dtype(value), _shape(value.tensor_shape)) for key, value in sorted(signature.outputs.items())]})
    return rows


def export_card(export_dir, name, task, labels, tokenizer, bert_config, precision, base_model=None, **fields):
    """The `ModelCard` of the export saved in `export_dir`; `fields` (training, command, base_model) as
    the caller knows them."""
    return ModelCard(name=name, task=task, base_model=base_model, labels=list(labels or []),
                     tokenizer=tokenizer_facts(tokenizer), model=model_facts(bert_config, precision),
                     signatures=signature_rows(export_dir), version=tfbert_version(), **fields)


def write_export_card(export_dir, card):
    """Writes the card to `export_dir/assets.extra/README.md`; returns its path."""
    folder = pathlib.Path(export_dir) / CARD_PATH.parent
    folder.mkdir(exist_ok=True)
    return card.write(folder)
