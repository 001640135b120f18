"""bfloat16 mixed-precision training (tfbert.models.precision): bfloat16 compute, float32 weights,
float32 logits and losses; the policy kept by configs and copies; exports in their own precision."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from conftest import run_python
from tfbert.errors import TfbertError

TEXTS = ["the quick brown fox", "jumps over the lazy dog", "a b c", "deb packages for debian"]

BUILDERS = {
    "build_classifier": {"labels": ["a", "b"]},
    "build_token_classifier": {"labels": ["O", "B-X", "I-X"]},
    "build_question_answerer": {},
}


def _inputs(model, build):
    if build != "build_question_answerer":
        return tf.constant(TEXTS)
    return model.tokenizer((tf.constant(TEXTS[:2]), tf.constant(TEXTS[2:])))


def _main_layer(model):
    from tfbert.models.inference import main_layers

    (main_layer,) = main_layers(model)
    return main_layer


def _encoder_dense_layers(model):
    return [layer for layer in _main_layer(model)._flatten_layers() if isinstance(layer, tf_keras.layers.Dense)]


@pytest.mark.parametrize("build", list(BUILDERS))
def test_bfloat16_models_compute_in_bfloat16_on_float32_weights(tiny_checkpoint, build):
    """Every encoder dense layer computes in bfloat16; weights, optimizer slots and logits stay float32;
    the logits equal the float32 model's within bfloat16 rounding; one training step updates the weights."""
    import tfbert

    models = {}
    for precision in ("float32", "bfloat16"):
        tf_keras.utils.set_random_seed(0)
        models[precision] = getattr(tfbert, build)(str(tiny_checkpoint), precision=precision, **BUILDERS[build])
    assert tf_keras.mixed_precision.global_policy().name == "float32"  # the policy does not leak out of the build
    mixed = models["bfloat16"]
    encoder_dense = _encoder_dense_layers(mixed)
    assert len(encoder_dense) >= 12 and {layer.compute_dtype for layer in encoder_dense} == {"bfloat16"}
    assert {layer.compute_dtype for layer in _encoder_dense_layers(models["float32"])} == {"float32"}
    assert {v.dtype for v in mixed.variables} == {tf.float32}

    # The feed-forward activation (GELU, an Erfc) computes in float32, between casts: bfloat16 Erfc is slow.
    graph = tf.function(lambda: mixed(_inputs(mixed, build))).get_concrete_function().graph
    activations = [op for op in graph.get_operations() if op.type in ("Erf", "Erfc")]
    assert len(activations) == _main_layer(mixed).config.num_hidden_layers
    assert {op.get_attr("T") for op in activations} == {tf.float32}

    outputs = {precision: tf.nest.flatten(model(_inputs(model, build))) for precision, model in models.items()}
    for full, half in zip(outputs["float32"], outputs["bfloat16"]):
        assert half.dtype == tf.float32
        scale = float(tf.reduce_max(tf.abs(full)))
        assert 0 < float(tf.reduce_max(tf.abs(full - half))) <= 0.05 * scale  # bfloat16 rounding, not equality

    before = [v.numpy() for v in mixed.trainable_variables]
    mixed.compile(train_steps=4)
    if build == "build_question_answerer":
        tokens = _inputs(mixed, build)
        labels = {"start_logits": tf.constant([1, 2]), "end_logits": tf.constant([2, 3])}
        history = mixed.fit(tf.data.Dataset.from_tensors((tokens, labels)).repeat(2), verbose=0)
    else:
        texts = tf.constant(TEXTS)
        labels = tf.constant([0, 1, 0, 1]) if build == "build_classifier" else tf.ones(mixed(texts).shape[:2], tf.int32)
        history = mixed.fit(tf.data.Dataset.from_tensors((texts, labels)).repeat(2), verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert {v.dtype for v in mixed.optimizer.variables()} <= {tf.float32, tf.int64}
    changed = sum(not np.array_equal(old, new.numpy()) for old, new in zip(before, mixed.trainable_variables))
    assert changed == len(before)


def test_training_precision_is_checked(tiny_checkpoint, monkeypatch, caplog):
    """A wrong precision is refused by name; bfloat16 on a CPU without bfloat16 instructions is warned about."""
    import tfbert
    from tfbert.jobs import training_run

    with pytest.raises(TfbertError, match=r"precision must be one of 'float32', 'bfloat16'; received precision='float16'"):
        tfbert.build_classifier(str(tiny_checkpoint), labels=["a", "b"], precision="float16")
    assert tf_keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(TfbertError, match="received precision='half'"):
        tfbert.finetune("train.csv", "dev.csv", precision="half")
    for flags, warned in (([], True), (["amx_bf16", "avx512_bf16"], False), (None, False)):
        monkeypatch.setattr(training_run, "cpu_bfloat16_flags", lambda flags=flags: flags)
        caplog.clear()
        training_run.check_training_precision("bfloat16")
        training_run.check_training_precision("float32")
        assert sum("neither AMX nor AVX512-BF16" in record.message for record in caplog.records) == warned


FINETUNE = """
import json, sys
import tfbert
result = tfbert.finetune(sys.argv[1], sys.argv[2], model=sys.argv[3], out_dir=sys.argv[4], epochs=6, batch_size=8,
                         max_length=16, learning_rate=2e-3, patience=None, precision="bfloat16", verbose=0)
print(json.dumps({"history": result.history, "export": str(result.export_path), "best": result.best_metric}))
"""

SERVE = """
import sys, tensorflow as tf, tensorflow_text
from tfbert.serving.op_check import export_nodes, multiplies_in_bfloat16
signature = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
print(multiplies_in_bfloat16(export_nodes(sys.argv[1])))
print(" ".join(label.decode() for label in signature(text=tf.constant(sys.argv[2:]))["label"].numpy()))
"""


def test_bfloat16_finetune_learns_and_exports_float32(tmp_path, tiny_checkpoint):
    """`finetune(precision="bfloat16")` end to end on a task the tiny model can learn: the dev metric
    reaches 1, each epoch records its training time, and the export multiplies in float32."""
    rows = [("animals", f"the {word} runs in the field") for word in ("dog", "cat", "horse", "cow", "sheep", "goat")]
    rows += [("software", f"a {word} library for python") for word in ("parser", "compiler", "network", "plotting",
                                                                        "database", "testing")]
    for split, chosen in (("train", rows * 4), ("dev", rows)):
        (tmp_path / f"{split}.csv").write_text("label,text\n" + "".join(f"{label},{text}\n" for label, text in chosen),
                                               encoding="utf-8")
    result = run_python(FINETUNE, tmp_path / "train.csv", tmp_path / "dev.csv", tiny_checkpoint, tmp_path / "out",
                        timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["best"] == 1.0, report["history"]
    assert all(entry["train_seconds"] > 0 for entry in report["history"])
    served = run_python(SERVE, report["export"], "the dog runs in the field", "a parser library for python")
    assert served.returncode == 0, served.stderr[-3000:]
    assert served.stdout.split("\n")[:2] == ["False", "animals software"]


EXPORTS = """
import json, sys, tensorflow as tf, tensorflow_text
from tfbert.serving.op_check import export_nodes, multiplies_in_bfloat16
report = {}
for path in sys.argv[2:]:
    logits = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(json.loads(sys.argv[1])))["logits"]
    report[path] = {"bfloat16": multiplies_in_bfloat16(export_nodes(path)), "logits": logits.numpy().tolist()}
print(json.dumps(report))
"""


def test_bfloat16_model_keeps_its_policy_and_exports_in_either_precision(tmp_path, tiny_checkpoint):
    """A model built with precision="bfloat16" stays bfloat16 through save/load, get_config, add_tokens and
    prune_heads; `export_saved_model` of it computes in the export's precision (float32: the float32
    model's logits within float32 noise, in a fresh process), and leaves the model in bfloat16."""
    import tfbert
    from tfbert.models.classifier import BertClassifier

    def computes_in(model):
        return {layer.compute_dtype for layer in _encoder_dense_layers(model)}

    tf_keras.utils.set_random_seed(0)
    mixed = tfbert.build_classifier(str(tiny_checkpoint), labels=["a", "b"], precision="bfloat16")
    assert computes_in(mixed) == {"bfloat16"}
    assert tf_keras.mixed_precision.global_policy().name == "float32"
    revived = [tfbert.load_classifier(tfbert.save_classifier(mixed, tmp_path / "keras")),
               BertClassifier.from_config(mixed.get_config()),
               tfbert.add_tokens(mixed, ["zyxwvut"]), tfbert.prune_heads(mixed, {0: [0]})]
    assert [computes_in(model) for model in revived] == [{"bfloat16"}] * 4
    assert tf_keras.mixed_precision.global_policy().name == "float32"

    exports = {precision: tfbert.export_saved_model(mixed, tmp_path / precision, precision=precision, warmup=False)
               for precision in ("float32", "bfloat16")}
    assert computes_in(mixed) == {"bfloat16"}  # exporting leaves the model as it was

    full = tfbert.build_classifier(str(tiny_checkpoint), labels=["a", "b"])
    full.set_weights(mixed.get_weights())
    expected = full(tf.constant(TEXTS)).numpy()
    scale = float(np.max(np.abs(expected)))
    assert float(np.max(np.abs(expected - mixed(tf.constant(TEXTS)).numpy()))) > 1e-3 * scale  # bfloat16 rounds
    served = run_python(EXPORTS, json.dumps(TEXTS), exports["float32"], exports["bfloat16"])
    assert served.returncode == 0, served.stderr[-3000:]
    report = json.loads(served.stdout.strip().splitlines()[-1])
    float32, bfloat16 = report[str(exports["float32"])], report[str(exports["bfloat16"])]
    assert (float32["bfloat16"], bfloat16["bfloat16"]) == (False, True)
    np.testing.assert_allclose(float32["logits"], expected, atol=1e-4 * scale, rtol=1e-5)
    float32_error = float(np.max(np.abs(np.array(float32["logits"]) - expected)))
    assert float32_error < float(np.max(np.abs(np.array(bfloat16["logits"]) - expected))) <= 0.05 * scale
