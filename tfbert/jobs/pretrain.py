"""`pretrain`: a corpus in, a pre-trained Hugging Face checkpoint folder out, resumable.

The run is cut into rounds of `checkpoint_every` steps (Keras epochs over an endless stream of
sentence pairs). After each round the Hugging Face folder `<out>` is rewritten (each file replaced
atomically), then Keras' BackupAndRestore saves weights, optimizer and round in
`<out>/.pretrain-state/backup`. A killed run started again with the same arguments resumes after its
last finished round; the learning-rate schedule continues from the restored optimizer step. A finished
run keeps its history in `<out>/.pretrain-state/` and drops the backup. TensorBoard logs go to
`<out>/logs` (`tfbert.jobs.tensorboard`).
"""

import dataclasses
import json
import logging
import math
import os
import pathlib
import shutil
import tempfile

import tf_keras

from tfbert import defaults
from tfbert.checkpoints.model_card import checkpoint_card, made_by
from tfbert.errors import TfbertError, check_positive_int
from tfbert.files import write_json
from tfbert.jobs.sentence_pairs import pretraining_batches, sentence_pairs
from tfbert.jobs.tensorboard import LOGS_FOLDER, tensorboard_callback, write_scalars
from tfbert.models.optimization import create_optimizer
from tfbert.models.pretrainer import build_pretrainer, save_pretrained
from tfbert.models.surgery import add_tokens as add_tokens_to

logger = logging.getLogger(__name__)

STATE_DIR = ".pretrain-state"


@dataclasses.dataclass
class PretrainResult:
    folder: pathlib.Path  # the Hugging Face checkpoint folder
    history: list  # per round: loss, mlm_loss, nsp_loss, mlm_accuracy, nsp_accuracy
    heldout: dict  # the same metrics on held-out documents (empty if eval_steps is 0)
    resumed_from_round: int
    pretrainer: object = None


class _Rounds(tf_keras.callbacks.Callback):
    """After each round: rewrite the Hugging Face folder and the history (atomically), before the backup."""

    def __init__(self, folder, state_dir, card):
        super().__init__()
        self.folder, self.state_dir, self.card = pathlib.Path(folder), pathlib.Path(state_dir), card
        path = self.state_dir / "history.json"
        self.history = json.loads(path.read_text()) if path.is_file() else []

    def on_epoch_end(self, epoch, logs=None):
        self.history = [h for h in self.history if h["round"] <= epoch]
        self.history.append({"round": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        write_folder(self.model, self.folder, card_after(self.card, self.history))
        write_json(self.state_dir / "history.json", self.history)


def card_after(card, history, heldout=None):
    """The folder's model-card fields after the rounds of `history` (and the held-out metrics)."""
    training = card["training"]
    rounds = training["settings"]["steps"] // training["settings"]["checkpoint_every"]
    data = {**training["data"], "rounds run": f"{len(history)} of {rounds}"}
    return {**card, "training": {**training, "data": data, "dev_metrics": dict(heldout or {})}}


def write_folder(pretrainer, folder, card=None):
    """save_pretrained to a staging folder inside `folder`, then each file into place with an atomic rename.

    A reader (or a kill) sees every file either old or new, never half-written; the run state in
    `folder/.pretrain-state` is never moved.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    try:
        save_pretrained(pretrainer, staging, {"name": folder.resolve().name, **(card or {})})
        for path in staging.iterdir():
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pretrain(corpus, out, model=None, config=None, steps=defaults.PRETRAIN_STEPS, batch_size=defaults.BATCH_SIZE,
             max_length=defaults.PRETRAIN_MAX_LENGTH, learning_rate=defaults.PRETRAIN_LEARNING_RATE,
             checkpoint_every=defaults.PRETRAIN_CHECKPOINT_EVERY, holdout_every=defaults.PRETRAIN_HOLDOUT_EVERY,
             eval_steps=defaults.PRETRAIN_EVAL_STEPS, seed=defaults.SEED, verbose=1, allow_pickle=False, add_tokens=None,
             logdir=None):
    """Pre-trains (MLM + NSP) from a checkpoint or a fresh config; writes a Hugging Face folder to `out`.

    Args:
        corpus: str. One sentence a line, a blank line between documents.
        out: str. The Hugging Face checkpoint folder to write (config.json, vocab.txt, model.safetensors).
        model: str. Checkpoint to continue pre-training (domain adaptation).
        config: "tiny", a dict or a config.json path: a fresh BERT of that size (default vocabulary).
        steps: int. Optimizer steps in all. Defaults to 1000.
        batch_size, max_length, learning_rate: Defaults 32, 128, 1e-4 (AdamW, 10% warm-up, linear decay).
        checkpoint_every: int. Steps between checkpoints. Defaults to 200.
        holdout_every: int. Every n-th document is held out of training. Defaults to 20.
        eval_steps: int. Held-out batches evaluated at the end. Defaults to 50.
        add_tokens: list of str. Tokens added to the vocabulary before training (`tfbert.add_tokens`:
            their embeddings start as the mean and learn from the corpus). The written folder holds
            them as transformers does. A resumed run must get the same list. Defaults to none.
        logdir: str. Where the TensorBoard logs go (`tfbert.jobs.tensorboard`): each round's losses,
            accuracies and learning rate, the held-out metrics at the end (as "validation"), and the
            run's hyper-parameters. Defaults to out/logs.

    Returns:
        PretrainResult.
    """
    if (model is None) == (config is None):
        raise TfbertError("pass exactly one of --model (continue a checkpoint) or --config (tiny or a config.json).")
    for name, value in (("steps", steps), ("checkpoint_every", checkpoint_every), ("batch_size", batch_size)):
        check_positive_int(name, value)
    out = pathlib.Path(out)
    state_dir = out / STATE_DIR
    finished = state_dir / "finished.json"
    if finished.is_file():
        logger.info("%s holds a finished pre-training run; pick another --out to train again", out)
        done = json.loads(finished.read_text())
        return PretrainResult(out, done["history"], done["heldout"], len(done["history"]))
    if out.exists() and not state_dir.exists() and any(out.iterdir()):
        raise TfbertError(f"{out} exists and is not a pre-training run of tfbert; pick a new --out folder.")
    # What the saved state depends on: a resumed run must be the same model.
    run = {"model": None if model is None else str(model),
           "config": dict(sorted(config.items())) if isinstance(config, dict) else None if config is None else str(config),
           "max_length": max_length, "add_tokens": list(add_tokens or [])}
    if (state_dir / "run.json").is_file():
        started = json.loads((state_dir / "run.json").read_text())
        changed = [key for key in run if started.get(key) != run[key]]
        if changed:
            raise TfbertError(f"{out} holds a run started with other {', '.join(changed)} "
                              f"({', '.join(f'{k}={started.get(k)!r}' for k in changed)}); "
                              "pass the same arguments to resume it, or pick a new --out folder.")
    tf_keras.utils.set_random_seed(seed)
    pretrainer = build_pretrainer(model=model, config=config, max_length=max_length, allow_pickle=allow_pickle)
    if add_tokens:
        pretrainer = add_tokens_to(pretrainer, add_tokens)
    rounds = math.ceil(steps / checkpoint_every)
    pretrainer.compile(optimizer=create_optimizer(rounds * checkpoint_every, learning_rate=learning_rate))
    # About 4 characters a token of English: two segments of 2 * max_length characters fill max_length.
    segment_chars = 2 * max_length
    train = pretraining_batches(sentence_pairs(corpus, "train", holdout_every, seed=seed, segment_chars=segment_chars),
                                pretrainer.tokenizer, batch_size=batch_size, seed=seed)
    settings = {**run, "add_tokens": len(run["add_tokens"]), "steps": rounds * checkpoint_every, "batch_size": batch_size,
                "learning_rate": learning_rate, "checkpoint_every": checkpoint_every, "holdout_every": holdout_every,
                "seed": seed}
    card = {"base_model": run["model"], "training": {"data": {"corpus": str(corpus)}, "settings": settings},
            "command": made_by("tfbert.pretrain", corpus=str(corpus), out=str(out), **settings)}
    if not state_dir.exists():
        write_folder(pretrainer, out, card_after(card, []))  # the untrained start, so the folder exists before the state
        state_dir.mkdir()
        write_json(state_dir / "run.json", run)
    progress = _Rounds(out, state_dir, card)
    resumed = len(progress.history)
    backup = tf_keras.callbacks.BackupAndRestore(str(state_dir / "backup"), delete_checkpoint=False)
    logdir = pathlib.Path(logdir) if logdir is not None else out / LOGS_FOLDER
    logs = tensorboard_callback(logdir, settings)
    pretrainer.fit(train, epochs=rounds, steps_per_epoch=checkpoint_every, callbacks=[progress, logs, backup],
                   verbose=verbose)
    heldout = {}
    shutil.rmtree(state_dir / "backup", ignore_errors=True)
    if eval_steps:
        batches = pretraining_batches(sentence_pairs(corpus, "heldout", holdout_every, seed=seed + 7,
                                                     segment_chars=segment_chars),
                                      pretrainer.tokenizer, batch_size=batch_size, seed=seed + 7)
        heldout = {k: float(v) for k, v in pretrainer.evaluate(batches, steps=eval_steps, verbose=0, return_dict=True).items()}
        write_scalars(logdir, "validation", rounds - 1, heldout)
        checkpoint_card(out, pretrainer.model.config, pretrainer.tokenizer, ["BertForPreTraining"], name=out.resolve().name,
                        **card_after(card, progress.history, {f"heldout_{k}": v for k, v in heldout.items()})).write(out)
    write_json(finished, {"history": progress.history, "heldout": heldout})
    return PretrainResult(out, progress.history, heldout, resumed, pretrainer)
