"""export_saved_model: the encoder's seven signatures, checked in a fresh process with only tensorflow + tensorflow_text."""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import SEED_IDS, SEED_SENTENCE, debian_texts, run_python
from tfbert.errors import TfbertError
from tfbert.serving.export import export_saved_model

TEXTS = [SEED_SENTENCE, "", "A pair of texts, with punctuation!"] + debian_texts("dev", 5)
PAIRS = ["second segment", "x", ""] + debian_texts("dev", 10)[5:]

FRESH_PROCESS_CHECK = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tensorflow-text ops

from tensorflow.core.protobuf import saved_model_pb2

export_dir, expected_file = sys.argv[1], sys.argv[2]
expected = np.load(expected_file)
texts = json.loads(open(expected_file + ".json").read())
loaded = tf.saved_model.load(export_dir)
report = {"signatures": sorted(loaded.signatures)}
calls = {
    "serving_default": dict(text=texts["text"]),
    "tokenize": dict(text=texts["text"]),
    "embed": dict(text=texts["text"]),
    "encode_pair": dict(text=texts["text"], text_pair=texts["text_pair"]),
    "tokenize_pair": dict(text=texts["text"], text_pair=texts["text_pair"]),
    "tokenize_with_offsets": dict(text=texts["text"]),
    "tokenize_pair_with_offsets": dict(text=texts["text"], text_pair=texts["text_pair"]),
}
diffs, shapes, empty = {}, {}, {}
for name, kwargs in calls.items():
    fn = loaded.signatures[name]
    out = fn(**{k: tf.constant(v) for k, v in kwargs.items()})
    for key, value in out.items():
        diffs[f"{name}/{key}"] = float(np.abs(value.numpy().astype(np.float64) - expected[f"{name}/{key}"]).max())
        shapes[f"{name}/{key}"] = [list(value.shape), value.dtype.name]
    out = fn(**{k: tf.constant([], tf.string) for k in kwargs})
    empty[name] = {key: list(value.shape) for key, value in out.items()}
report.update(diffs=diffs, shapes=shapes, empty=empty)
report["seed_ids"] = loaded.signatures["tokenize"](text=tf.constant([texts["text"][0]]))["input_ids"].numpy()[0].tolist()
report["empty_string_ids"] = loaded.signatures["tokenize"](text=tf.constant([""]))["input_ids"].numpy()[0].tolist()

proto = saved_model_pb2.SavedModel()
proto.ParseFromString(open(export_dir + "/saved_model.pb", "rb").read())
ops = set()
for meta_graph in proto.meta_graphs:
    ops |= {node.op for node in meta_graph.graph_def.node}
    for function in meta_graph.graph_def.library.function:
        ops |= {node.op for node in function.node_def}
report["ops"] = sorted(ops)
report["modules"] = sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("tfbert", "transformers", "tf_keras", "torch"))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def exported(default_export):
    return default_export


def expected_outputs(encoder):
    """The in-process model's outputs for every signature, computed in graph mode as a server runs them."""
    return {k: np.asarray(v, np.float64) for k, v in _expected_graph(encoder)(tf.constant(TEXTS), tf.constant(PAIRS)).items()}


def _expected_graph(encoder):
    tokenizer, bert = encoder.get_layer("tokenizer"), encoder.get_layer("bert")
    return tf.function(lambda text, pair: _expected(encoder, tokenizer, bert, text, pair))


def _expected(encoder, tokenizer, bert, text, pair):
    single, both = tokenizer(text), tokenizer((text, pair))
    encoded = encoder(text)
    encoded_pair = bert(**both)
    mask = tf.cast(single["attention_mask"], tf.float32)[:, :, None]
    pair_mask = tf.cast(both["attention_mask"], tf.float32)[:, :, None]
    mean = tf.reduce_sum(encoded["last_hidden_state"] * mask, 1) / tf.reduce_sum(mask, 1)
    values = {  # the export computes real tokens only: its padding positions are 0
        "serving_default/last_hidden_state": encoded["last_hidden_state"] * mask,
        "serving_default/pooled_output": encoded["pooled_output"],
        "encode_pair/last_hidden_state": encoded_pair.last_hidden_state * pair_mask,
        "encode_pair/pooled_output": encoded_pair.pooler_output,
        "embed/sentence_embedding": tf.math.l2_normalize(mean, -1),
    }
    values.update({f"tokenize/{k}": v for k, v in single.items()})
    values.update({f"tokenize_pair/{k}": v for k, v in both.items()})
    values.update({f"tokenize_with_offsets/{k}": v for k, v in tokenizer.tokenize_with_offsets(text).items()})
    values.update({f"tokenize_pair_with_offsets/{k}": v
                   for k, v in tokenizer.tokenize_with_offsets((text, pair)).items()})
    return values


def test_fresh_process_matches_in_process(tmp_path, exported, default_encoder):
    _, path = exported
    expected_file = tmp_path / "expected.npz"
    np.savez(expected_file, **expected_outputs(default_encoder))
    (tmp_path / "expected.npz.json").write_text(json.dumps({"text": TEXTS, "text_pair": PAIRS}))
    result = run_python(FRESH_PROCESS_CHECK, path, expected_file)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["signatures"] == sorted(["serving_default", "serve_examples", "tokenize", "encode_pair", "tokenize_pair", "embed",
                                           "tokenize_with_offsets", "tokenize_pair_with_offsets"])
    assert report["modules"] == []  # loading needed no tfbert, transformers, tf_keras or torch
    assert max(report["diffs"].values()) <= 1e-5, report["diffs"]
    assert report["seed_ids"] == SEED_IDS
    assert report["empty_string_ids"] == [101, 102]
    batch, hidden = len(TEXTS), 384
    shapes = report["shapes"]
    assert shapes["serving_default/pooled_output"] == [[batch, hidden], "float32"]
    seq = shapes["tokenize/input_ids"][0][1]
    assert shapes["serving_default/last_hidden_state"] == [[batch, seq, hidden], "float32"]
    assert shapes["embed/sentence_embedding"] == [[batch, hidden], "float32"]
    assert shapes["tokenize/input_ids"][1] == "int32"
    for name, outputs in report["empty"].items():
        assert all(shape[0] == 0 for shape in outputs.values()), (name, outputs)
    assert report["empty"]["serving_default"]["last_hidden_state"][2] == hidden
    callbacks = {"PyFunc", "PyFuncStateless", "EagerPyFunc"} & set(report["ops"])
    assert not callbacks


def test_vocabulary_is_an_asset(exported, default_encoder):
    _, path = exported
    vocab = default_encoder.get_layer("tokenizer").vocabulary
    assert (path / "assets" / "vocab.txt").read_bytes() == open(vocab, "rb").read()


def test_versions_are_never_overwritten_silently(exported, default_encoder):
    base, path = exported
    assert path == base / "1"
    with pytest.raises(TfbertError, match="already exists; pick another version"):
        export_saved_model(default_encoder, base, version=1)
    before = (path / "saved_model.pb").stat().st_mtime_ns
    second = export_saved_model(default_encoder, base)  # next free version
    assert second == base / "2"
    assert (path / "saved_model.pb").stat().st_mtime_ns == before
    replaced = export_saved_model(default_encoder, base, version=2, overwrite=True)
    assert replaced == second and (second / "saved_model.pb").is_file()
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no temporary folders left


def test_failed_export_leaves_no_version(tmp_path, default_encoder, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(default_encoder, tmp_path / "m")
    assert list((tmp_path / "m").iterdir()) == []


def test_rejects_non_encoder(tmp_path):
    import tf_keras

    model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,))], name="not_an_encoder")
    with pytest.raises(TfbertError, match="needs a model from tfbert.build_encoder"):
        export_saved_model(model, tmp_path)

    class Mixed(tf_keras.Model):  # a mixed-precision model whose config does not round-trip
        def __init__(self):
            super().__init__(name="mixed")
            self.dense = tf_keras.layers.Dense(1, dtype="mixed_bfloat16")

        def call(self, x):
            return self.dense(x)

    mixed = Mixed()
    mixed(tf.zeros([1, 2]))
    with pytest.raises(TfbertError, match="needs a model from tfbert.build_encoder.*received Mixed 'mixed'"):
        export_saved_model(mixed, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_taken_version_is_refused_before_any_work(exported, default_encoder, monkeypatch):
    import tfbert.serving.export as export

    def no_work(model):
        raise AssertionError("the export started work on a version it then refused")

    monkeypatch.setattr(export, "float32_twin", no_work)
    base, _ = exported
    with pytest.raises(TfbertError, match="already exists; pick another version"):
        export_saved_model(default_encoder, base, version=1)
    with pytest.raises(TfbertError, match="keep must be a positive integer"):
        export_saved_model(default_encoder, base, keep=0)
