"""`BestEpoch`: the best epoch by a dev metric kept on disk, early stopping, and both surviving a killed run.

Keras' ModelCheckpoint(save_best_only) and EarlyStopping forget their best value when a run is
restarted, so a resumed run would overwrite a better model with a worse one. This callback keeps its
state in `state.json` of the run's folder and reloads it at the start of training.
"""

import json
import logging
import pathlib
import shutil
import tempfile
import time

import tf_keras

from tfbert.errors import TfbertError
from tfbert.files import write_json
from tfbert.models.classifier import save_classifier

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


class BestEpoch(tf_keras.callbacks.Callback):
    """Keeps the best epoch by a dev metric (as `best-<N>/`, written by `save`), stops early, and
    survives a killed process. Each epoch's history entry holds its logs and `train_seconds`, the time
    its training steps took.

    Args:
        folder: path. The run's work folder.
        monitor: str. Metric in the epoch logs, e.g. "val_accuracy".
        mode: str. "max" or "min".
        patience: int. Stop after this many epochs without improvement. None: never stop early.
        write: bool. Write files (False on non-chief workers of a multi-worker run).
        save: callable(model, folder). Writes the best model. Defaults to `save_classifier`.
    """

    def __init__(self, folder, monitor, mode="max", patience=None, write=True, save=save_classifier):
        super().__init__()
        self.folder, self.monitor, self.mode, self.patience, self.write = pathlib.Path(folder), monitor, mode, patience, write
        self.save = save
        self.state = self.load_state(self.folder)

    @staticmethod
    def load_state(folder):
        path = pathlib.Path(folder) / STATE_FILE
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        return {"best_epoch": None, "best_metric": None, "wait": 0, "history": [], "finished": False}

    def _better(self, value):
        best = self.state["best_metric"]
        return best is None or (value > best if self.mode == "max" else value < best)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._last_step_end = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last_step_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        # train_seconds: the epoch's training steps, without the dev metrics computed after them. Added
        # to Keras' own logs, so that the callbacks after this one (TensorBoard, History) see it too.
        logs = logs if logs is not None else {}
        logs["train_seconds"] = self._last_step_end - self._epoch_start
        if self.monitor not in logs:
            raise TfbertError(f"the dev metric {self.monitor!r} is not in the epoch's logs {sorted(logs)}; is there dev data?")
        value = float(logs[self.monitor])
        number = epoch + 1
        history = [h for h in self.state["history"] if h["epoch"] < number]  # a re-run epoch replaces its entry
        history.append({"epoch": number, **{k: float(v) for k, v in logs.items()}})
        self.state["history"] = history
        if self._better(value):
            previous = self.state["best_epoch"]
            if self.write:
                self.save(self.model, self.folder / f"best-{number}")
            else:
                # Saving reads distributed variables with collective ops: every worker must take
                # part, so the others save too, to a scratch folder (as Keras' ModelCheckpoint does).
                scratch = tempfile.mkdtemp(prefix="tfbert-worker-")
                self.save(self.model, scratch)
                shutil.rmtree(scratch, ignore_errors=True)
            self.state.update(best_epoch=number, best_metric=value, wait=0)
            if self.write:
                write_json(self.folder / STATE_FILE, self.state)
                if previous and previous != number:
                    shutil.rmtree(self.folder / f"best-{previous}", ignore_errors=True)
            logger.info("epoch %d: %s improved to %.4f", number, self.monitor, value)
        else:
            self.state["wait"] += 1
            if self.write:
                write_json(self.folder / STATE_FILE, self.state)
            if self.patience is not None and self.state["wait"] >= self.patience:
                logger.info("epoch %d: %s has not improved for %d epochs; stopping", number, self.monitor, self.state["wait"])
                self.model.stop_training = True
