"""tfbert.models.datasets: tf.data autotuning off for the datasets tfbert's models fit, evaluate and predict on."""

import numpy as np
import tensorflow as tf

from tfbert.models.classifier import build_classifier
from tfbert.models.datasets import without_autotune_wait

TEXTS = ["A puzzle game with falling blocks", "SQL database server", "Card game for two players",
         "Key-value database storage engine"]


def test_without_autotune_wait_turns_off_an_unset_setting_only():
    plain = tf.data.Dataset.range(6).batch(4)
    assert plain.options().autotune.enabled is None
    off = without_autotune_wait(plain)
    assert off.options().autotune.enabled is False
    assert [list(b) for b in off.as_numpy_iterator()] == [[0, 1, 2, 3], [4, 5]]
    for explicit in (True, False):
        options = tf.data.Options()
        options.autotune.enabled = explicit
        options.deterministic = False
        chosen = plain.with_options(options)
        kept = without_autotune_wait(chosen)
        assert kept is chosen and kept.options().autotune.enabled is explicit
    options = tf.data.Options()
    options.deterministic = False  # another option set: merged, not replaced
    merged = without_autotune_wait(plain.with_options(options))
    assert merged.options().autotune.enabled is False and merged.options().deterministic is False
    arrays = np.zeros([3, 2])
    assert without_autotune_wait(arrays) is arrays


def test_models_pass_every_fit_argument_through(tiny_checkpoint):
    # fit's arguments are bound by name to find x and validation_data; positional ones must land where Keras expects.
    labels = np.array([0, 1, 0, 1], np.int32)
    train = tf.data.Dataset.from_tensor_slices((TEXTS, labels)).batch(2)
    dev = tf.data.Dataset.from_tensor_slices((TEXTS[:2], labels[:2])).batch(2)
    model = build_classifier(str(tiny_checkpoint), labels=["games", "database"])
    model.compile()
    # x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data
    history = model.fit(train, None, None, 2, 0, None, 0.0, dev)
    assert len(history.history["val_loss"]) == 2 and len(history.history["loss"]) == 2
    history = model.fit(x=train, epochs=1, verbose=0, validation_data=dev)
    assert len(history.history["val_accuracy"]) == 1
    assert set(model.evaluate(dev, verbose=0, return_dict=True)) == {"loss", "accuracy"}
    logits = model.predict(train, verbose=0)
    assert logits.shape == (4, 2)
    np.testing.assert_allclose(logits, model.predict(tf.constant(TEXTS), verbose=0), rtol=1e-5, atol=1e-5)
