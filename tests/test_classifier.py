"""build_classifier: heads, pooling, model.fit on raw strings, config round trip, save/load, export."""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import debian_texts, run_python
from tfbert.models.classifier import BertClassifier, ClassifierHead, build_classifier, load_classifier, save_classifier
from tfbert.models.optimization import create_optimizer
from tfbert.errors import TfbertError
from tfbert.serving.export import export_saved_model

GAMES = ["A puzzle game with falling blocks", "Arcade shooter game in space", "Card game for two players",
         "Chess game engine and board", "Strategy game of empire building", "Racing game with cars on tracks"]
DATABASES = ["SQL database server", "Database client library for PostgreSQL", "Key-value database storage engine",
             "Database migration tools for schemas", "Backup tools for database servers", "Embedded SQL database library"]


def without_build_config(config):
    """Keras records the input shape a layer was first built with; it is not part of the architecture."""
    config = json.loads(json.dumps(config))
    for layer in config.get("layers", []):
        layer.pop("build_config", None)
    return config


@pytest.mark.parametrize("text_pair", [False, True])
def test_config_round_trips(tiny_checkpoint, text_pair):
    model = build_classifier(str(tiny_checkpoint), labels=["games", "database", "sound"], pooling="mean", text_pair=text_pair)
    config = model.get_config()
    revived = BertClassifier.from_config(config)
    assert json.dumps(without_build_config(revived.get_config()), sort_keys=True) == json.dumps(without_build_config(config), sort_keys=True)
    assert [layer.name for layer in revived.layers] == [layer.name for layer in model.layers]
    assert revived.labels == ["games", "database", "sound"] and revived.text_pair == text_pair
    head = model.get_layer("classifier_head")
    assert ClassifierHead.from_config(head.get_config()).get_config() == head.get_config()


def test_fit_on_raw_strings_learns(tiny_checkpoint):
    texts = GAMES + DATABASES
    labels = np.array([0] * len(GAMES) + [1] * len(DATABASES), np.int32)
    dataset = tf.data.Dataset.from_tensor_slices(({"text": texts}, labels)).shuffle(12, seed=1).batch(4)
    tf.keras.utils.set_random_seed(1)
    model = build_classifier(str(tiny_checkpoint), labels=["games", "database"], dropout=0.0)
    model.compile(optimizer=create_optimizer(train_steps=60, learning_rate=2e-3))
    before = model.evaluate(dataset, verbose=0, return_dict=True)
    history = model.fit(dataset, epochs=20, verbose=0)
    after = model.evaluate(dataset, verbose=0, return_dict=True)
    assert after["loss"] < 0.5 * before["loss"], (before, after, history.history["loss"])
    assert after["accuracy"] == 1.0
    # A plain (text, label) dataset works too.
    model.fit(tf.data.Dataset.from_tensor_slices((texts, labels)).batch(6), epochs=1, verbose=0)


@pytest.mark.parametrize("task,labels,targets", [
    ("multi_label", ["games", "database", "free"], [[1, 0, 1], [0, 1, 0]]),
    ("regression", None, [0.25, 4.0]),
])
def test_other_tasks_train(tiny_checkpoint, task, labels, targets):
    model = build_classifier(str(tiny_checkpoint), labels=labels, task=task)
    model.compile(train_steps=4)
    dataset = tf.data.Dataset.from_tensor_slices((["free game", "a database"], np.asarray(targets, np.float32))).batch(2)
    history = model.fit(dataset, epochs=4, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert model(tf.constant(["x"])).shape == (1, 1 if task == "regression" else len(labels))


def test_pooling_choices(tiny_checkpoint):
    texts = tf.constant(["a short text", "a somewhat longer text with more words in it", ""])
    for pooling in ("pooled", "cls", "mean"):
        model = build_classifier(str(tiny_checkpoint), labels=["a", "b"], pooling=pooling, dropout=0.0)
        tokens = model.get_layer("tokenizer")(texts)
        outputs = model.get_layer("bert")(**tokens, training=False)
        hidden, mask = outputs.last_hidden_state.numpy(), tokens["attention_mask"].numpy()[:, :, None]
        features = {
            "pooled": outputs.pooler_output.numpy(),
            "cls": hidden[:, 0],
            "mean": (hidden * mask).sum(1) / mask.sum(1),
        }[pooling]
        dense = model.get_layer("classifier_head")._dense
        expected = features @ dense.kernel.numpy() + dense.bias.numpy()
        np.testing.assert_allclose(model(texts).numpy(), expected, atol=1e-5)


def test_save_and_load(tmp_path, tiny_checkpoint):
    model = build_classifier(str(tiny_checkpoint), labels=["x", "y", "z"], text_pair=True, max_length=64)
    model.compile(train_steps=2)
    pairs = {"text": tf.constant(["first", "second text"]), "text_pair": tf.constant(["a", "b"])}
    model.fit(tf.data.Dataset.from_tensor_slices((pairs, [0, 2])).batch(2), epochs=1, verbose=0)
    folder = save_classifier(model, tmp_path / "saved")
    (tmp_path / "moved").mkdir()
    moved = folder.rename(tmp_path / "moved" / "classifier")  # the folder carries its vocabulary
    loaded = load_classifier(moved)
    np.testing.assert_allclose(loaded(pairs).numpy(), model(pairs).numpy(), atol=1e-6)
    assert loaded.labels == ["x", "y", "z"] and loaded.get_layer("tokenizer").max_length == 64


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(labels=["a", "b"], task="ranking"), "task must be one of"),
    (dict(labels=["a", "b"], pooling="max"), "pooling must be one of"),
    (dict(labels=["only"]), "needs the label names \\(at least 2\\)"),
    (dict(labels=["a", "a"]), "label names must be unique"),
    (dict(labels=["a", "b"], task="regression"), "predicts one score"),
])
def test_head_errors(tiny_checkpoint, kwargs, pattern):
    with pytest.raises(TfbertError, match=pattern):
        build_classifier(str(tiny_checkpoint), **kwargs)


def test_optimizer_warms_up_then_decays_linearly():
    optimizer = create_optimizer(train_steps=100, learning_rate=1e-4, warmup_fraction=0.1)
    schedule = optimizer.learning_rate
    rates = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    np.testing.assert_allclose(rates, [0.0, 5e-5, 1e-4, 5e-5, 0.0], atol=1e-9)
    assert optimizer._exclude_from_weight_decay == ["LayerNorm", "layer_norm", "bias"]


FRESH_CLASSIFIER_CHECK = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401

loaded = tf.saved_model.load(sys.argv[1])
texts = json.loads(sys.argv[2])
outputs = {k: v.numpy() for k, v in loaded.signatures["serving_default"](text=tf.constant(texts)).items()}
labels = open(sys.argv[1] + "/assets.extra/labels.txt", encoding="utf-8").read().split()
print(json.dumps({
    "signatures": sorted(loaded.signatures),
    "probabilities": outputs["probabilities"].tolist(),
    "logits": outputs["logits"].tolist(),
    "label": [label.decode() for label in outputs["label"]],
    "label_id": outputs["label_id"].tolist(),
    "dtypes": {k: v.dtype.name for k, v in outputs.items()},
    "labels_file": labels,
    "modules": sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("tfbert", "transformers", "tf_keras")),
}))
"""


def test_classifier_export_in_fresh_process(tmp_path, tiny_checkpoint):
    model = build_classifier(str(tiny_checkpoint), labels=["games", "database", "sound"])
    model.compile(train_steps=3)
    texts = debian_texts("dev", 6)
    model.fit(tf.data.Dataset.from_tensor_slices((texts, [0, 1, 2, 0, 1, 2])).batch(2), epochs=1, verbose=0)
    path = export_saved_model(model, tmp_path / "classifier")
    result = run_python(FRESH_CLASSIFIER_CHECK, path, json.dumps(texts + [""]))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    logits = model(tf.constant(texts + [""])).numpy()
    assert report["signatures"] == ["classify", "serve_examples", "serving_default", "tokenize", "tokenize_with_offsets"]
    assert report["modules"] == []
    np.testing.assert_allclose(report["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(report["probabilities"], tf.nn.softmax(logits).numpy(), atol=1e-5)
    assert report["label_id"] == logits.argmax(1).tolist()
    assert report["label"] == [["games", "database", "sound"][i] for i in logits.argmax(1)]
    assert report["dtypes"] == {"probabilities": "float32", "logits": "float32", "label": "object", "label_id": "int32"}
    assert report["labels_file"] == ["games", "database", "sound"]


def test_pair_classifier_export_has_classify_pair(tmp_path, tiny_checkpoint):
    import tensorflow_text  # noqa: F401

    model = build_classifier(str(tiny_checkpoint), labels=["no", "yes"], text_pair=True)
    path = export_saved_model(model, tmp_path / "pairs", warmup=False)
    loaded = tf.saved_model.load(str(path))
    assert sorted(loaded.signatures) == ["classify", "classify_pair", "serve_examples", "serving_default", "tokenize_pair",
                                         "tokenize_pair_with_offsets"]
    pairs = dict(text=tf.constant(["is it free?", "x"]), text_pair=tf.constant(["yes it is", ""]))
    exported = loaded.signatures["classify_pair"](**pairs)
    np.testing.assert_allclose(exported["logits"].numpy(), model(pairs).numpy(), atol=1e-5)
    assert loaded.signatures["tokenize_pair"](**pairs)["token_type_ids"].numpy()[0].tolist().count(1) == 4
    offsets = loaded.signatures["tokenize_pair_with_offsets"](**pairs)["offsets"].numpy()[0].tolist()
    assert offsets[:6] == [[0, 0], [0, 2], [3, 5], [6, 10], [10, 11], [0, 0]]  # [CLS] is it free ? [SEP]
    assert offsets[6:9] == [[0, 3], [4, 6], [7, 9]]  # yes it is, in the second text


def test_default_pooling_follows_the_checkpoint(tiny_checkpoint, default_checkpoint):
    from tfbert.checkpoints.checkpoint import sentence_transformers_pooling

    assert sentence_transformers_pooling(default_checkpoint.folder) == "mean"  # all-MiniLM-L6-v2's 1_Pooling
    assert default_checkpoint.pooling == "mean"
    assert sentence_transformers_pooling(tiny_checkpoint) is None
    assert build_classifier(str(tiny_checkpoint), labels=["a", "b"]).head.pooling == "pooled"


FRESH_OUTPUTS = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401

texts = json.loads(sys.argv[2])
report = {}
for path in sys.argv[1].split(","):
    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures["serving_default"](text=tf.constant(texts))
    report[path] = {k: {"value": v.numpy().tolist(), "dtype": v.dtype.name} for k, v in outputs.items()}
print(json.dumps(report))
"""


@pytest.mark.parametrize("task,labels", [("multi_label", ["games", "database", "free"]), ("regression", ["rating"])])
def test_multi_label_and_regression_exports(tmp_path, tiny_checkpoint, task, labels):
    texts = debian_texts("dev", 5) + ["", "a game"]
    model = build_classifier(str(tiny_checkpoint), labels=labels, task=task)
    dense = model.head._dense
    kernel, bias = dense.get_weights()
    trained = export_saved_model(model, tmp_path / "trained", warmup=False)
    # Hand-checkable: a zero kernel leaves the bias, the same for every text.
    hand_bias = np.array([2.0, -1.0, 0.0] if task == "multi_label" else [3.25], np.float32)
    dense.set_weights([np.zeros_like(kernel), hand_bias])
    hand = export_saved_model(model, tmp_path / "hand", warmup=False)
    result = run_python(FRESH_OUTPUTS, f"{trained},{hand}", json.dumps(texts))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    dense.set_weights([kernel, bias])
    logits = model(tf.constant(texts)).numpy()
    served, by_hand = report[str(trained)], report[str(hand)]
    if task == "multi_label":
        assert {k: v["dtype"] for k, v in served.items()} == {"probabilities": "float32", "logits": "float32",
                                                             "predicted": "int32"}
        np.testing.assert_allclose(served["logits"]["value"], logits, rtol=0, atol=1e-5)
        probabilities = 1 / (1 + np.exp(-logits))
        np.testing.assert_allclose(served["probabilities"]["value"], probabilities, rtol=0, atol=1e-6)
        assert served["predicted"]["value"] == (probabilities >= 0.5).astype(int).tolist()
        # sigmoid(2) = 0.881, sigmoid(-1) = 0.269, sigmoid(0) = 0.5 (at least 0.5: predicted)
        np.testing.assert_allclose(by_hand["probabilities"]["value"], [[0.880797, 0.268941, 0.5]] * len(texts), atol=1e-6)
        assert by_hand["predicted"]["value"] == [[1, 0, 1]] * len(texts)
    else:
        assert {k: v["dtype"] for k, v in served.items()} == {"score": "float32"}
        np.testing.assert_allclose(served["score"]["value"], logits[:, 0], rtol=0, atol=1e-5)
        assert by_hand["score"]["value"] == [3.25] * len(texts)
