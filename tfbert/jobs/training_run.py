"""What every fine-tuning run shares: its work folder, `fit` with the best epoch kept and a kill survived,
and its result.

A run keeps its state in a work folder (default `<out_dir>/.finetune/<name>/`):

    backup/       tf_keras BackupAndRestore: weights, optimizer and epoch at the end of each epoch
    logs/         TensorBoard: each epoch's metrics and learning rate, the run's hyper-parameters
    best-<N>/     the best epoch so far (the task's save layout)
    state.json    best epoch and metric, epochs without improvement, per-epoch history, finished flag

A run killed at any point and started again with the same arguments resumes after the last finished
epoch, with its best model, early-stopping count and history intact. A finished run started again
reports its result instead of training again (restart=True / --restart trains anew).
"""

import dataclasses
import logging
import os
import pathlib
import shutil
import tempfile

import tensorflow as tf
import tf_keras

from tfbert.checkpoints.model_card import checkpoint_card, made_by
from tfbert.errors import check_choice
from tfbert.files import write_json
from tfbert.jobs.best_epoch import STATE_FILE, BestEpoch
from tfbert.jobs.tensorboard import LOGS_FOLDER, tensorboard_callback
from tfbert.models.precision import TRAINING_PRECISIONS
from tfbert.serving.export import export_saved_model
from tfbert.serving.op_check import cpu_bfloat16_flags
from tfbert.serving.task_export import build_task_module

logger = logging.getLogger(__name__)

TRANSFORMERS_FOLDER = "transformers"  # out_dir/<name>/transformers: the Hugging Face layout save


@dataclasses.dataclass
class FinetuneResult:
    """What a fine-tuning run produced."""

    export_path: pathlib.Path  # the SavedModel version folder (None if not exported)
    model_path: pathlib.Path  # the best epoch's model in the work folder
    best_epoch: int  # 1-based
    best_metric: float
    monitor: str
    history: list  # one dict of metrics per finished epoch
    resumed_from_epoch: int  # 0 for a fresh start
    model: object = None  # the trained model (last epoch's weights); None if nothing ran
    transformers_path: pathlib.Path = None  # the Hugging Face layout folder (None if not written)

    @property
    def classifier(self):
        """The trained model (the name of `model` before token classification arrived)."""
        return self.model


def check_training_precision(precision):
    """Checks a run's `precision`; warns when bfloat16 would be emulated on this machine's CPU."""
    check_choice("precision", precision, tuple(TRAINING_PRECISIONS))
    if precision == "bfloat16" and cpu_bfloat16_flags() == []:
        logger.warning("precision='bfloat16': this machine's CPU has neither AMX nor AVX512-BF16, so bfloat16 is "
                       "emulated here and training runs slower than in float32. Train in bfloat16 on a CPU with "
                       "AMX (Intel Xeon Sapphire Rapids or later), or with precision='float32'.")


def run_name(train, name):
    """The model's name: `name`, else the training file's folder (for train.* files) or its stem."""
    if name is not None:
        return name
    path = pathlib.Path(train).resolve()
    return path.parent.name if path.stem.lower() in ("train", "training") else path.stem


class WorkFolder:
    """A run's work folder and its saved state (see the module docstring)."""

    def __init__(self, out_dir, name, work_dir=None, restart=False):
        self.path = pathlib.Path(work_dir) if work_dir else pathlib.Path(out_dir) / ".finetune" / name
        if restart and self.path.exists():
            shutil.rmtree(self.path)
        self.state = BestEpoch.load_state(self.path)

    @property
    def finished(self):
        return bool(self.state.get("finished") and self.state.get("best_epoch"))

    def logdir(self, logdir=None):
        """Where the run's TensorBoard logs go: `logdir`, else `<work folder>/logs`."""
        return pathlib.Path(logdir) if logdir is not None else self.path / LOGS_FOLDER

    def best_folder(self, state=None):
        return self.path / f"best-{(state or self.state)['best_epoch']}"

    def result(self, monitor, model=None, resumed=None):
        state = self.state
        if self.finished:
            logger.info("%s holds a finished run; pass restart=True (--restart) to train again", self.path)
        export_path, transformers_path = state.get("export_path"), state.get("transformers_path")
        return FinetuneResult(
            export_path=pathlib.Path(export_path) if export_path else None,
            model_path=self.best_folder(),
            best_epoch=state["best_epoch"],
            best_metric=state["best_metric"],
            monitor=monitor,
            history=state["history"],
            resumed_from_epoch=len(state["history"]) if resumed is None else resumed,
            model=model,
            transformers_path=pathlib.Path(transformers_path) if transformers_path else None,
        )

    def fit(self, model, train_data, dev_data, epochs, steps_per_epoch, monitor, mode, patience, strategy, chief,
            save, callbacks=(), verbose=1, logdir=None, hparams=None):
        """`model.fit` with the best epoch kept (written by `save`), early stopping, BackupAndRestore and
        TensorBoard logs (`tfbert.jobs.tensorboard`, written by the chief) in `logdir`, by default
        `<work folder>/logs`, with `hparams` for the HParams dashboard.

        `callbacks` run first at each epoch's end, so a callback adding dev metrics to the logs (entity
        F1) is seen by the progress bar, the best-epoch keeper and TensorBoard.

        Returns:
            int: the epochs finished before this call (0 for a fresh start).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        best = BestEpoch(self.path, monitor, mode, patience, write=chief, save=save)
        resumed = len(best.state["history"])
        # BestEpoch runs before BackupAndRestore at each epoch's end: a kill between the two re-runs the
        # epoch, whose history entry is then replaced, never lost.
        backup_dir = self.path / "backup" if chief else self.path / f"backup-worker-{strategy.cluster_resolver.task_id}"
        progress = [tf_keras.callbacks.ProgbarLogger(count_mode="steps")] if callbacks and verbose else []
        logs = [tensorboard_callback(self.logdir(logdir), hparams or {})] if chief else []
        model.fit(train_data, validation_data=dev_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                  callbacks=[*callbacks, *progress, best, *logs,
                             tf_keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=False)],
                  verbose=verbose)
        self.state = best.state
        return resumed

    def card(self, base_model, data, settings, monitor, function="tfbert.finetune"):
        """The model-card fields of the run's best epoch (`tfbert.checkpoints.model_card.ModelCard`).

        Args:
            base_model: str. The checkpoint the run started from.
            data: dict. The training and dev data: {"train", "train examples", "dev", "dev examples"}.
            settings: dict. The run's settings (its TensorBoard hyper-parameters).
            monitor: str. The dev metric that picked the best epoch.
        """
        best = next((entry for entry in self.state["history"] if entry["epoch"] == self.state["best_epoch"]), {})
        training = {"data": data, "settings": settings, "best_epoch": self.state["best_epoch"],
                    "epochs_run": len(self.state["history"]), "monitor": monitor,
                    "dev_metrics": {key: value for key, value in best.items() if key.startswith("val_")}}
        command = made_by(function, **{key: data.get(key) for key in ("train", "dev")}, **settings)
        return {"base_model": base_model, "training": training, "command": command}

    def export_best(self, out_dir, name, keep, task, card=None, **options):
        """Exports the best epoch's Hugging Face folder as a task export (`build_task_module(folder, task,
        **options)`) to out_dir/name/<version>, and copies the folder to out_dir/name/transformers; both
        get the model card of `card`'s fields (`card()`).

        Returns:
            (export path, transformers folder).
        """
        best = self.best_folder()
        module = build_task_module(str(best), task, **options)
        export_path = export_saved_model(module, pathlib.Path(out_dir) / name, keep=keep, card=card)

        def copy(folder):
            shutil.copytree(best, folder, dirs_exist_ok=True)
            config = module.model.config
            checkpoint_card(folder, config, module.tokenizer, config.architectures, name=name, **(card or {})).write(folder)

        transformers_path = replace_folder(pathlib.Path(out_dir) / name / TRANSFORMERS_FOLDER, copy)
        return export_path, transformers_path

    def finish(self, chief, export_path=None, transformers_path=None):
        """Marks the run finished, with where its export and Hugging Face folder went; drops the backup."""
        self.state.update(finished=True, export_path=str(export_path) if export_path else None,
                          transformers_path=str(transformers_path) if transformers_path else None)
        if chief:
            write_json(self.path / STATE_FILE, self.state)
            shutil.rmtree(self.path / "backup", ignore_errors=True)


def for_strategy(train_data, dev_data, steps, steps_per_epoch, strategy, chief):
    """The datasets sharded by batch across replicas and workers, and the training set repeated when
    `steps_per_epoch` caps an epoch; returns (train_data, dev_data, steps an epoch)."""
    if strategy.num_replicas_in_sync > 1 or not chief:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_data = train_data.with_options(options)
        dev_data = dev_data.with_options(options) if dev_data is not None else None
    if steps_per_epoch is not None:
        steps = min(steps, steps_per_epoch)
        train_data = train_data.repeat()
    return train_data, dev_data, steps


def replace_folder(target, write):
    """Writes a folder with `write(staging_folder)` beside `target`, then swaps it in for any folder there,
    so that a reader never sees a half-written folder."""
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{target.name}-"))
    try:
        os.chmod(staging, 0o755)  # mkdtemp's folder is private; the folder is for sharing
        write(staging)
        if target.exists():
            old = target.with_name(f".old-{staging.name}")
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
