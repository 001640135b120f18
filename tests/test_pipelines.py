"""BERT inside TF pipelines: tf.data, model.predict on raw strings, an export reused as a trainable layer."""

import csv

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from conftest import debian_texts, shared_file, valid_ids
from tfbert.models.embedding import embed
from tfbert.errors import TfbertError
from tfbert.serving.saved_model_layer import SavedModelLayer


def test_tokenizer_inside_dataset_map_on_a_real_corpus(default_encoder, reference_tokenizer):
    texts = debian_texts("dev", 120)
    tokenizer = default_encoder.get_layer("tokenizer")
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(16).map(tokenizer, num_parallel_calls=tf.data.AUTOTUNE)
    ours = [row for batch in dataset for row in valid_ids(batch)]
    assert ours == reference_tokenizer()(texts, truncation=True, max_length=512)["input_ids"]


def test_predict_on_a_dataset_of_raw_strings(default_encoder, torch_reference):
    import torch

    texts = debian_texts("dev", 24)
    # Each batch pads to its own longest text, so predict returns ragged rows: a row is as long as
    # the longest text of its batch, and its first tokens are the text's.
    predicted = default_encoder.predict(tf.data.Dataset.from_tensor_slices(texts).batch(8), verbose=0)
    tokenizer, model = torch_reference
    for i, text in enumerate(texts):
        with torch.no_grad():
            theirs = model(**tokenizer([text], truncation=True, max_length=512, return_tensors="pt"))
        length = theirs.last_hidden_state.shape[1]
        ours = np.asarray(predicted["last_hidden_state"][i])
        assert ours.shape[0] == max(len(ids) for ids in tokenizer(texts[i // 8 * 8:i // 8 * 8 + 8], truncation=True)["input_ids"])
        np.testing.assert_allclose(ours[:length], theirs.last_hidden_state[0].numpy(), atol=2e-5)
        np.testing.assert_allclose(predicted["pooled_output"][i], theirs.pooler_output[0].numpy(), atol=2e-5)


def _labelled(count_per_label, labels=("games", "science", "mail")):
    rows = {label: [] for label in labels}
    with open(shared_file("data", "debian-sections", "train.csv"), encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["label"] in rows and len(rows[row["label"]]) < count_per_label:
                rows[row["label"]].append(row["text"][:300])
    texts = [text for label in labels for text in rows[label]]
    ids = [i for i, label in enumerate(labels) for _ in rows[label]]
    return texts, np.asarray(ids)


def _classifier(path, trainable):
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    layer = SavedModelLayer(path, output_key="sentence_embedding", trainable=trainable, name="bert")
    logits = tf_keras.layers.Dense(3, kernel_initializer=tf_keras.initializers.GlorotUniform(seed=0))(layer(text))
    model = tf_keras.Model(text, logits)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-4),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model, layer


def test_export_as_a_trainable_layer_fine_tunes_with_fit(default_export, default_encoder):
    _, path = default_export
    texts, labels = _labelled(16)
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels)).shuffle(48, seed=0).batch(8)

    model, layer = _classifier(path, trainable=True)
    assert len(layer.trainable_weights) == len(default_encoder.get_layer("bert").trainable_weights) > 100
    # Before training, the layer is the export: equal to tfbert.embed on the same texts.
    np.testing.assert_allclose(layer(tf.constant(texts[:8])).numpy(), embed(texts[:8], default_encoder), atol=1e-5)
    # Dropout runs only in training.
    sample = tf.constant(texts[:4])
    assert not np.allclose(layer(sample, training=True), layer(sample, training=True))
    np.testing.assert_array_equal(layer(sample, training=False), layer(sample, training=False))

    before = [w.numpy() for w in layer.trainable_weights]
    history = model.fit(dataset, epochs=4, verbose=0).history
    changed = sum(not np.array_equal(b, w.numpy()) for b, w in zip(before, layer.trainable_weights))
    print(f"fit through the export: loss {history['loss'][0]:.3f} -> {history['loss'][-1]:.3f}, "
          f"accuracy {history['accuracy'][-1]:.3f}, {changed}/{len(before)} BERT weights changed")
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] >= 0.9
    # BERT itself was fine-tuned, not only the head: every weight moved but the pooler's two, which
    # mean pooling does not use (docs/embeddings.md: "every BERT weight moves but the pooler's two").
    unchanged = [w.name for b, w in zip(before, layer.trainable_weights) if np.array_equal(b, w.numpy())]
    assert changed == len(before) - 2 and all("pooler" in name for name in unchanged), unchanged

    # Frozen: only the head trains, the export's weights stay, and dropout stays off.
    model, layer = _classifier(path, trainable=False)
    assert not layer.trainable_weights and len(model.trainable_weights) == 2
    before = [w.numpy() for w in layer.weights]
    model.fit(dataset, epochs=1, verbose=0)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, layer.weights))
    np.testing.assert_array_equal(layer(sample, training=True), layer(sample, training=True))


def test_saved_model_layer_config_and_errors(default_export, tmp_path):
    base, path = default_export
    layer = SavedModelLayer(base, output_key="pooled_output")  # a model folder: its latest version
    clone = SavedModelLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_array_equal(clone(tf.constant(["a text"])), layer(tf.constant(["a text"])))
    outputs = SavedModelLayer(path)(tf.constant(["two texts", "in one batch"]))
    assert sorted(outputs) == ["last_hidden_state", "pooled_output", "sentence_embedding"]
    with pytest.raises(TfbertError, match="output_key must be one of"):
        SavedModelLayer(path, output_key="logits")
    with pytest.raises(TfbertError, match="neither a SavedModel folder"):
        SavedModelLayer(tmp_path)
