"""TensorBoard logs of finetune and pretrain (tfbert.jobs.tensorboard), read back from the event files
as TensorBoard reads them and compared with the runs' Keras histories."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import metadata as hparams_metadata

from conftest import shared_file


def read_scalars(folder):
    """{tag: {step: value}} of the scalar summaries in a folder's event files."""
    scalars = {}
    for path in sorted(pathlib.Path(folder).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return scalars


def read_hparams(folder):
    """The hyper-parameters of the HParams summary in a folder's event files: {name: value}."""
    for path in sorted(pathlib.Path(folder).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == hparams_metadata.SESSION_START_INFO_TAG:
                    info = hparams_metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
                    return {name: getattr(value, value.WhichOneof("kind")) for name, value in info.hparams.items()}
    raise AssertionError(f"no hparams summary in {folder}")


def assert_logged(scalars, history, names, step_key):
    """Every `names` metric of every history entry is the scalar `epoch_<name>` at its step."""
    for entry in history:
        step = entry[step_key] - 1
        for name in names:
            tag = "epoch_" + name.removeprefix("val_")
            assert scalars[tag][step] == pytest.approx(entry[name], rel=1e-6), (tag, step)


def test_finetune_logs_every_metric_and_the_learning_rate(tmp_path, tiny_checkpoint):
    import tfbert

    rows = [("animals", f"the {word} runs in the field") for word in ("dog", "cat", "horse", "cow")]
    rows += [("software", f"a {word} library for python") for word in ("parser", "compiler", "network", "database")]
    for split, chosen in (("train", rows * 3), ("dev", rows)):
        (tmp_path / f"{split}.csv").write_text("label,text\n" + "".join(f"{label},{text}\n" for label, text in chosen),
                                               encoding="utf-8")
    result = tfbert.finetune(str(tmp_path / "train.csv"), str(tmp_path / "dev.csv"), model=str(tiny_checkpoint),
                             out_dir=str(tmp_path / "out"), epochs=3, batch_size=8, max_length=16, patience=None,
                             learning_rate=1e-3, export=False, verbose=0)
    logdir = next((tmp_path / "out" / ".finetune").iterdir()) / "logs"  # the default: inside the run's work folder
    train, validation = read_scalars(logdir / "train"), read_scalars(logdir / "validation")
    assert len(result.history) == 3
    assert_logged(train, result.history, ["loss", "accuracy", "train_seconds"], "epoch")
    assert_logged(validation, result.history, ["val_loss", "val_accuracy"], "epoch")
    # The learning rate after each epoch is the schedule's at the optimizer step reached (warm-up, linear decay).
    schedule, steps = result.model.optimizer.lr, int(result.model.optimizer.iterations.numpy()) // 3
    expected = [float(schedule(steps * (epoch + 1))) for epoch in range(3)]
    assert [train["epoch_learning_rate"][epoch] for epoch in range(3)] == pytest.approx(expected, rel=1e-6)
    assert expected[0] > expected[1] > expected[2]  # a schedule, not a constant
    hparams = read_hparams(logdir)
    assert hparams["learning_rate"] == pytest.approx(1e-3) and hparams["epochs"] == 3
    assert hparams["max_length"] == 16 and hparams["task"] == "classification" and hparams["precision"] == "float32"
    assert hparams["model"] == result.model.checkpoint_name


def test_pretrain_logs_rounds_held_out_metrics_and_hparams_and_writes_a_card(tmp_path):
    """One tiny pretraining run for both: TensorBoard's logs, and the Hugging Face folder's model card
    (tfbert.checkpoints.model_card) with the held-out metrics."""
    from huggingface_hub import ModelCard

    from tfbert.jobs.pretrain import pretrain

    lines = open(shared_file("data", "debian-descriptions.txt"), encoding="utf-8").read().split("\n")[:600]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    logdir = tmp_path / "board"
    result = pretrain(str(corpus), str(tmp_path / "out"), config="tiny", steps=20, checkpoint_every=10, batch_size=8,
                      max_length=48, eval_steps=2, learning_rate=1e-3, verbose=0, logdir=str(logdir))
    assert not (tmp_path / "out" / "logs").exists()  # --logdir moved them
    train = read_scalars(logdir / "train")
    names = ["loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy"]
    assert_logged(train, result.history, names, "round")
    assert sorted(train["epoch_learning_rate"]) == [0, 1]
    assert read_scalars(logdir / "validation") == {f"epoch_{name}": {1: pytest.approx(result.heldout[name], rel=1e-6)}
                                                   for name in names}
    hparams = read_hparams(logdir)
    assert hparams["steps"] == 20 and hparams["config"] == "tiny" and hparams["checkpoint_every"] == 10
    assert np.isfinite(list(train["epoch_loss"].values())).all()
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.pipeline_tag == "fill-mask" and card.data.model_name == "out"
    metrics = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert metrics == {f"heldout_{name}": pytest.approx(value, abs=1e-6) for name, value in result.heldout.items()}
    assert "| rounds run | 2 of 2 |" in card.text and f"| corpus | {corpus} |" in card.text
