"""An export fine-tuned where TensorFlow users already are: a Keras 3 model (`import keras`, TensorFlow's
default Keras) through `Keras3SavedModelLayer`, and a tf_keras model through TF Hub's `hub.KerasLayer`.
Each runs in a fresh process, as a user's script would."""

import json

from conftest import run_python

TRAIN = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer's ops
import keras

texts = [f"the {w} runs in the field" for w in ("dog", "cat", "horse", "cow")] + \\
        [f"a {w} library for python" for w in ("parser", "compiler", "network", "database")]
labels = np.array([0] * 4 + [1] * 4)
data = tf.data.Dataset.from_tensor_slices((texts, labels)).shuffle(8, seed=0).batch(4).repeat(3)
keras.utils.set_random_seed(0)
report = {"keras": keras.__version__}

# keras.layers.TFSMLayer, trainable, with Adam: the failure Keras3SavedModelLayer exists for.
text = keras.Input(shape=(), dtype="string")
bert = keras.layers.TFSMLayer(sys.argv[1], call_endpoint="embed", trainable=True)
model = keras.Model(text, keras.layers.Dense(2)(bert(text)["sentence_embedding"]))
model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
try:
    model.fit(data, epochs=1, verbose=0)
    report["tfsm_layer_adam"] = "trained"
except ValueError as e:
    report["tfsm_layer_adam"] = str(e).splitlines()[0]

from tfbert.serving.keras3_layer import Keras3SavedModelLayer

text = keras.Input(shape=(), dtype="string")
layer = Keras3SavedModelLayer(sys.argv[1], "sentence_embedding")
model = keras.Model(text, keras.layers.Dense(2)(layer(text)))
model.compile(keras.optimizers.AdamW(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
before = [v.numpy().copy() for v in layer.trainable_weights]
history = model.fit(data, epochs=8, verbose=0).history
report["loss"] = history["loss"]
report["accuracy"] = history["accuracy"][-1]
report["unchanged"] = [v.name for b, v in zip(before, layer.trainable_weights) if np.array_equal(b, v.numpy())]
report["weights"] = len(before)
report["slots"] = len(model.optimizer.variables)
# Inference is deterministic (no dropout); the trained layer serves the training's weights.
report["deterministic"] = bool(np.array_equal(model.predict(tf.constant(texts), verbose=0),
                                              model.predict(tf.constant(texts), verbose=0)))

# The fine-tuned model saved as a .keras file and loaded back: the layer rebuilt from its config (the
# export) with the fine-tuned weights. Keras refuses to load any TFSMLayer unless safe_mode=False.
import os, tempfile
saved = os.path.join(tempfile.mkdtemp(), "fine_tuned.keras")
model.save(saved)
try:
    keras.models.load_model(saved)
except ValueError as e:
    report["safe_mode"] = str(e).splitlines()[0]
loaded = keras.models.load_model(saved, safe_mode=False)
inner = loaded.layers[1]
report["loaded"] = [type(inner).__name__, inner.output_key]
report["loaded_max_diff"] = float(np.abs(loaded.predict(tf.constant(texts), verbose=0)
                                         - model.predict(tf.constant(texts), verbose=0)).max())
report["loaded_moved"] = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, inner.trainable_weights))
print(json.dumps(report))
"""


def test_keras3_model_fine_tunes_an_export_with_adamw(tiny_export):
    result = run_python(TRAIN, tiny_export)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["keras"].startswith("3.")
    # The library's failure, kept here so that a Keras release fixing it is noticed.
    assert "is not a valid scope name" in report["tfsm_layer_adam"], report["tfsm_layer_adam"]
    assert report["loss"][-1] < 0.5 * report["loss"][0] and report["accuracy"] == 1.0, report
    # BERT itself was fine-tuned: every weight but the pooler's, which sentence_embedding does not use.
    assert report["weights"] > 30 and all("pooler" in name for name in report["unchanged"]), report["unchanged"]
    assert report["slots"] > 2 * report["weights"] and report["deterministic"]
    # Saved and loaded: the same predictions, from BERT weights that moved away from the export's.
    assert "safe_mode=False" in report.get("safe_mode", "loaded without safe_mode=False"), report
    assert report["loaded"] == ["Keras3SavedModelLayer", "sentence_embedding"]
    assert report["loaded_max_diff"] < 1e-5 and report["loaded_moved"] > 30, report


HUB = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer's ops
import tf_keras
import tensorflow_hub as hub

texts = [f"the {w} runs in the field" for w in ("dog", "cat", "horse", "cow")] + \\
        [f"a {w} library for python" for w in ("parser", "compiler", "network", "database")]
labels = np.array([0] * 4 + [1] * 4)
tf_keras.utils.set_random_seed(0)
text = tf_keras.Input(shape=(), dtype=tf.string)
layer = hub.KerasLayer(sys.argv[1], trainable=True, output_key="sentence_embedding")
model = tf_keras.Model(text, tf_keras.layers.Dense(2)(layer(text)))
model.compile(tf_keras.optimizers.Adam(1e-3), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
before = [v.numpy().copy() for v in layer.trainable_weights]
data = tf.data.Dataset.from_tensor_slices((texts, labels)).shuffle(8, seed=0).batch(4).repeat(3)
history = model.fit(data, epochs=8, verbose=0).history
unchanged = [v.name for b, v in zip(before, layer.trainable_weights) if np.array_equal(b, v.numpy())]
print(json.dumps({"loss": history["loss"], "accuracy": history["accuracy"][-1], "unchanged": unchanged,
                  "weights": len(before), "hub": hub.__version__}))
"""


def test_hub_keras_layer_fine_tunes_an_export(tiny_export):
    result = run_python(HUB, tiny_export, env={"TF_USE_LEGACY_KERAS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loss"][-1] < 0.5 * report["loss"][0] and report["accuracy"] == 1.0, report
    assert report["weights"] > 30 and all("pooler" in name for name in report["unchanged"]), report["unchanged"]
