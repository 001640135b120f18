"""`tfbert finetune`: the CLI end to end, resume after a killed process, and multi-worker training."""

import csv
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, shared_file
from test_cli import assert_one_line_error, tfbert


def slice_of(split, count, folder, labels=None, per_label=False):
    """The first `count` rows of debian-sections/<split>.csv (of the given labels; with per_label, the
    first `count` of each label), as <folder>/<split>.csv."""
    with open(shared_file("data", "debian-sections", f"{split}.csv"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if labels is None or r["label"] in labels]
    if per_label:
        rows = [r for label in sorted(labels) for r in [r for r in rows if r["label"] == label][:count]]
    else:
        rows = rows[:count]
    path = pathlib.Path(folder) / f"{split}.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def finetune_command(tiny_checkpoint, data_dir, out_dir, *extra):
    return [sys.executable, "-m", "tfbert", "finetune", "--model", str(tiny_checkpoint),
            "--train", str(data_dir / "train.csv"), "--dev", str(data_dir / "dev.csv"), "--out-dir", str(out_dir),
            "--epochs", "3", "--batch-size", "16", "--max-length", "64", "--learning-rate", "1e-3", "--verbose", "2",
            "--patience", "3", *extra]


def kill_after_first_epoch(command, env, work):
    """Runs a finetune command and kills it (SIGKILL) once epoch 1 is finished: its state and its backup
    checkpoint are on disk in `work`. Returns the killed run's output."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        state = work / "state.json"
        if state.is_file() and list((work / "backup").rglob("checkpoint")):
            if len(json.loads(state.read_text())["history"]) == 1:
                process.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    output = process.communicate()[0]
    assert process.returncode == -signal.SIGKILL, output[-3000:]
    return output


@pytest.mark.slow  # minutes of subprocess training; runs in the suite and in CI
def test_killed_run_resumes_after_its_last_finished_epoch(tmp_path, tiny_checkpoint):
    data_dir = tmp_path / "debian-sections"
    data_dir.mkdir()
    slice_of("train", 160, data_dir)
    slice_of("dev", 48, data_dir)
    out = tmp_path / "saved_models"
    command = finetune_command(tiny_checkpoint, data_dir, out)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    work = out / ".finetune" / "debian-sections"

    first_output = kill_after_first_epoch(command, env, work)
    assert "Epoch 1/3" in first_output and "Epoch 3/3" not in first_output
    assert not out.joinpath("debian-sections").exists()  # nothing exported yet
    epoch_one = json.loads((work / "state.json").read_text())["history"][0]

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed after epoch 1" in resumed.stdout
    assert "Epoch 1/3" not in resumed.stdout and "Epoch 2/3" in resumed.stdout  # epoch 1 is not trained again
    state = json.loads((work / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert state["history"][0] == epoch_one  # what epoch 1 measured survived the kill
    assert resumed.stdout.strip().endswith(str(out / "debian-sections" / "1"))
    assert (work / f"best-{state['best_epoch']}" / "model.weights.h5").is_file()

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "Epoch" not in again.stdout  # a finished run is not trained again
    assert again.stdout.strip().endswith(str(out / "debian-sections" / "1"))


def test_finetune_mistakes_are_one_line(tmp_path, tiny_checkpoint):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    slice_of("train", 20, data_dir, labels={"games", "database"})
    (data_dir / "dev.csv").write_text("text,label\nfine,games\nalso fine,database\nodd one,cooking\n", encoding="utf-8")
    result = tfbert("finetune", "--model", tiny_checkpoint, "--train", data_dir / "train.csv", "--dev", data_dir / "dev.csv",
                    "--out-dir", tmp_path / "out")
    assert_one_line_error(result, r"dev\.csv:4: label 'cooking' is not one of the 2 training labels")
    result = tfbert("finetune", "--model", tiny_checkpoint, "--train", data_dir / "train.csv", "--dev", data_dir / "dev.csv",
                    "--text-column", "description")
    assert_one_line_error(result, r"train\.csv:1: no column 'description'")


MULTI_WORKER = r"""
import json, sys
import numpy as np
from tfbert.jobs.finetune import finetune

checkpoint, data_dir, work = sys.argv[1:4]
result = finetune(f"{data_dir}/train.csv", f"{data_dir}/dev.csv", model=checkpoint, strategy="multi-worker",
                  epochs=3, batch_size=16, steps_per_epoch=4, max_length=48, learning_rate=1e-3, patience=None,
                  export=False, work_dir=work, verbose=2)
np.savez(f"{work}/final_weights.npz", *result.classifier.get_weights())
print(json.dumps({"history": result.history}))
"""


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_training_agrees_across_workers(tmp_path, tiny_checkpoint):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    slice_of("train", 128, data_dir, labels={"games", "database"})
    slice_of("dev", 32, data_dir, labels={"games", "database"})
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        (tmp_path / f"worker-{index}").mkdir()
        processes.append(subprocess.Popen([sys.executable, "-c", MULTI_WORKER, str(tiny_checkpoint), str(data_dir),
                                           str(tmp_path / f"worker-{index}")], env=env, cwd=REPO,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=900) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    histories = [json.loads(stdout.strip().splitlines()[-1])["history"] for stdout, _ in outputs]
    assert "Epoch 3/3" in outputs[0][0]
    losses = [h["loss"] for h in histories[0]]
    print(f"multi-worker loss by epoch: {losses}")
    assert losses[-1] < losses[0], losses
    # Both workers saw the same global steps and metrics (train_seconds is each worker's own clock).
    assert [{k: v for k, v in h.items() if k != "train_seconds"} for h in histories[0]] == \
        [{k: v for k, v in h.items() if k != "train_seconds"} for h in histories[1]]
    weights = [np.load(tmp_path / f"worker-{i}" / "final_weights.npz") for i in range(2)]
    assert len(weights[0].files) == len(weights[1].files) > 0
    for name in weights[0].files:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])


def test_finetune_takes_a_tf_data_the_user_already_has(tmp_path, tiny_checkpoint):
    import tensorflow as tf

    from tfbert.errors import TfbertError
    from tfbert.jobs.finetune import finetune

    texts = ["a puzzle game", "a chess game", "an sql database", "a database server"] * 4
    ids = [0, 0, 1, 1] * 4
    pairs = tf.data.Dataset.from_tensor_slices(({"text": texts, "text_pair": texts[::-1]}, ids))
    with pytest.raises(TfbertError, match="pass labels="):
        finetune(pairs, pairs, model=str(tiny_checkpoint), out_dir=tmp_path)
    result = finetune(pairs.shuffle(16, seed=0), pairs, model=str(tiny_checkpoint), labels=["games", "database"],
                      epochs=2, batch_size=4, learning_rate=1e-3, out_dir=tmp_path, name="pairs", verbose=0)
    assert [h["epoch"] for h in result.history] == [1, 2] and result.classifier.text_pair
    assert result.export_path == tmp_path / "pairs" / "1"
    assert (result.export_path / "assets.extra" / "labels.txt").read_text().split() == ["games", "database"]


EVALUATE_EXPORT = r"""
import csv, json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401

with open(sys.argv[2], encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
labels = tf.saved_model.load(sys.argv[1]).signatures["serving_default"](text=tf.constant([r["text"] for r in rows]))["label"]
print(json.dumps(sum(l.decode() == r["label"] for l, r in zip(labels.numpy(), rows)) / len(rows)))
"""


@pytest.fixture(scope="module")
def small_debian(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data") / "debian-sections"
    data_dir.mkdir()
    slice_of("train", 160, data_dir)
    slice_of("dev", 48, data_dir)
    return data_dir


def test_mirrored_run_exports_its_best_dev_epoch(tmp_path, tiny_checkpoint):
    """--strategy mirrored trains; the exported model is the epoch with the best dev accuracy, and scores it."""
    from conftest import run_python

    data_dir = tmp_path / "debian-sections"
    data_dir.mkdir()
    # Balanced, so that dev accuracy moves away from the majority share once the tiny model learns.
    slice_of("train", 96, data_dir, labels={"games", "database"}, per_label=True)
    slice_of("dev", 32, data_dir, labels={"games", "database"}, per_label=True)
    out = tmp_path / "saved_models"
    command = finetune_command(tiny_checkpoint, data_dir, out, "--strategy", "mirrored", "--epochs", "4",
                               "--patience", "4", "--learning-rate", "5e-3")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / ".finetune" / "debian-sections" / "state.json").read_text())
    accuracies = [h["val_accuracy"] for h in state["history"]]
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3, 4]
    assert state["best_epoch"] == 1 + int(np.argmax(accuracies)) and state["best_metric"] == max(accuracies)
    assert f"best epoch: {state['best_epoch']} (val_accuracy {max(accuracies):.4f})" in result.stdout
    print(f"dev accuracy by epoch: {accuracies}, best epoch {state['best_epoch']}")
    assert len(set(accuracies)) > 1  # the epochs differ, so picking the best one is a real choice
    # The export is that epoch: its accuracy on the dev file, served, equals what fit measured then.
    exported = run_python(EVALUATE_EXPORT, out / "debian-sections" / "1", data_dir / "dev.csv")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert abs(json.loads(exported.stdout.strip().splitlines()[-1]) - max(accuracies)) < 1e-6


def test_patience_stops_and_restart_trains_anew(tmp_path, tiny_checkpoint, small_debian):
    out = tmp_path / "saved_models"
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    state_file = out / ".finetune" / "debian-sections" / "state.json"
    # A learning rate too small to change any prediction: dev accuracy stays flat, so patience 1 stops
    # the run after epoch 2 (epoch 1 is the best; epoch 2 does not improve on it).
    flat = finetune_command(tiny_checkpoint, small_debian, out, "--epochs", "5", "--patience", "1",
                            "--learning-rate", "1e-9")
    result = subprocess.run(flat, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Epoch 2/5" in result.stdout and "Epoch 3/5" not in result.stdout
    state = json.loads(state_file.read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2] and state["best_epoch"] == 1 and state["wait"] == 1
    assert state["history"][0]["val_accuracy"] == state["history"][1]["val_accuracy"]

    # The same finished run again is not trained; with --restart it is, from scratch, with the new settings.
    again = subprocess.run(flat, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "Epoch" not in again.stdout
    restarted = finetune_command(tiny_checkpoint, small_debian, out, "--epochs", "2", "--restart")
    result = subprocess.run(restarted, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Epoch 1/2" in result.stdout and "Epoch 2/2" in result.stdout and "resumed" not in result.stdout
    state = json.loads(state_file.read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2] and state["finished"]
    assert result.stdout.strip().endswith(str(out / "debian-sections" / "2"))  # a new version of the model
    card = (out / "debian-sections" / "2" / "assets.extra" / "README.md").read_text(encoding="utf-8")
    assert "tfbert finetune --model " in card and " --restart" in card  # the card holds the command that made it
