"""create_optimizer: transformers' AdamW recipe, with embedding tables' sparse gradients applied densely."""

import numpy as np
import tensorflow as tf
from transformers import create_optimizer as hf_create_optimizer

from tfbert.models.optimization import create_optimizer

VOCAB, WIDTH, STEPS = 50, 8, 6


def train(optimizer, batches):
    """A gathered table (sparse gradients, with repeated ids and rows some steps leave out), a decayed
    kernel and undecayed LayerNorm and bias, one update a batch -> {name: value} of variables and Adam's slots."""
    rng = np.random.default_rng(0)
    shapes = {"word_embeddings": [VOCAB, WIDTH], "LayerNorm/gamma": [WIDTH], "dense/kernel": [WIDTH, 3],
              "dense/bias": [3]}
    variables = {name: tf.Variable(rng.normal(size=shape).astype(np.float32), name=name)
                 for name, shape in shapes.items()}
    target = tf.constant(rng.normal(size=[4, 3]).astype(np.float32))
    for ids in batches:
        with tf.GradientTape() as tape:
            hidden = tf.gather(variables["word_embeddings"], ids) * variables["LayerNorm/gamma"]
            logits = tf.reduce_sum(hidden, axis=1) @ variables["dense/kernel"] + variables["dense/bias"]
            loss = tf.reduce_mean(tf.square(logits - target))
        gradients = tape.gradient(loss, list(variables.values()))
        assert isinstance(gradients[0], tf.IndexedSlices)  # the sparse case is the one tested
        optimizer.apply_gradients(zip(gradients, variables.values()))
    values = {name: variable.numpy() for name, variable in variables.items()}
    for name, variable in variables.items() if batches else ():
        for slot in ("m", "v"):
            values[f"{name}/{slot}"] = optimizer.get_slot(variable, slot).numpy()
    return values


def test_embedding_tables_update_as_with_transformers_optimizer():
    rng = np.random.default_rng(1)
    batches = [tf.constant(rng.integers(0, VOCAB // 2 if step % 2 else VOCAB, size=[4, 5]), tf.int32)
               for step in range(STEPS)]
    batches[0] = tf.concat([batches[0][:, :4], batches[0][:, :1]], axis=1)  # the same id twice in a row
    settings = dict(learning_rate=0.05, warmup_fraction=0.5, weight_decay=0.1)
    ours = train(create_optimizer(train_steps=STEPS, **settings), batches)
    reference, _ = hf_create_optimizer(init_lr=0.05, num_train_steps=STEPS, num_warmup_steps=3, weight_decay_rate=0.1)
    theirs = train(reference, batches)
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=2e-5, atol=2e-6, err_msg=name)
    # not vacuous: every variable moved, and the rows no batch used were still decayed, as AdamW decays
    start = train(create_optimizer(train_steps=STEPS, **settings), [])
    for name in ("word_embeddings", "LayerNorm/gamma", "dense/kernel", "dense/bias"):
        assert not np.allclose(ours[name], start[name]), name
    unused = np.setdiff1d(np.arange(VOCAB), np.concatenate([ids.numpy().ravel() for ids in batches]))
    assert unused.size
    decay = np.prod([1 - 0.1 * float(reference.learning_rate(step)) for step in range(STEPS)])
    np.testing.assert_allclose(ours["word_embeddings"][unused], start["word_embeddings"][unused] * decay, rtol=1e-5)
    assert decay < 0.99


def test_config_matches_transformers_recipe():
    ours = create_optimizer(train_steps=100, learning_rate=3e-5, weight_decay=0.02).get_config()
    theirs = hf_create_optimizer(init_lr=3e-5, num_train_steps=100, num_warmup_steps=10, weight_decay_rate=0.02)[0]
    assert ours == theirs.get_config()


def test_without_train_steps_only_the_schedule_differs():
    constant = create_optimizer(learning_rate=3e-5, weight_decay=0.02).get_config()
    scheduled = hf_create_optimizer(init_lr=3e-5, num_train_steps=100, num_warmup_steps=10,
                                    weight_decay_rate=0.02)[0].get_config()
    assert constant.pop("learning_rate") == 3e-5
    assert isinstance(scheduled.pop("learning_rate"), dict)  # transformers' WarmUp schedule
    assert constant == scheduled


def update_ops(optimizer):
    """The op types of one traced update of a gathered table."""
    table = tf.Variable(tf.ones([VOCAB, WIDTH]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def step(ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table, ids))
        optimizer.apply_gradients([(tape.gradient(loss, table), table)])

    return {op.type for op in step.get_concrete_function().graph.get_operations()}


def test_embedding_tables_take_the_dense_path():
    ours = update_ops(create_optimizer(train_steps=STEPS))
    theirs = update_ops(hf_create_optimizer(init_lr=0.05, num_train_steps=STEPS, num_warmup_steps=3,
                                            weight_decay_rate=0.1)[0])
    assert "ResourceApplyAdam" in ours and "ResourceScatterAdd" not in ours
    assert "ResourceScatterAdd" in theirs and "ResourceApplyAdam" not in theirs  # Keras' sparse path
