"""Writing an export into TF Serving's layout, `base_dir/<version>/`, atomically.

The export is written under a temporary non-numeric name in base_dir (`.tmp-<version>-<pid>-*`),
which TF Serving ignores, then renamed into place; the signatures are those of `tfbert.serving.modules`.
"""

import contextlib
import logging
import os
import pathlib
import shutil
import tempfile

import tensorflow as tf
# Private, as tf.function's trace cache keys on it: `trace_shared` (EncoderModule, TextClassificationModule) must
# trace in the save's context.
from tensorflow.python.saved_model import save_context

from tfbert.checkpoints.model_card import made_by
from tfbert.errors import TfbertError, check_positive_int
from tfbert.models.inference import inference_graph, main_layers
from tfbert.models.inference_weights import PRECISIONS, InferenceWeights
from tfbert.models.precision import float32_twin
from tfbert.serving import warmup as serving_warmup
from tfbert.serving.example_signatures import set_method_names
from tfbert.serving.export_card import export_card, write_export_card
from tfbert.serving.modules import ClassifierModule, EncoderModule, check_exportable, export_module
from tfbert.serving.task_base import TaskModule
from tfbert.serving.versions import existing_versions, prune_versions, retire

logger = logging.getLogger(__name__)

LABELS_FILE = "assets.extra/labels.txt"
SAVE_OPTIONS = tf.saved_model.SaveOptions()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _remove_abandoned(base_dir):
    """Deletes staging folders (.tmp-<version>-<pid>-*) whose export process has died, e.g. killed mid-write."""
    for path in base_dir.glob(".tmp-*-*-*"):
        parts = path.name.split("-")
        if path.is_dir() and parts[2].isdigit() and not _pid_alive(int(parts[2])):
            logger.info("removing %s, left by an export that did not finish", path)
            shutil.rmtree(path, ignore_errors=True)


def check_version_free(base_dir, version, overwrite=False):
    """The version folder base_dir/<version>, checked before any work: a positive int, and free unless
    `overwrite`.

    Raises:
        TfbertError: the version is not a positive int, or exists and overwrite is False.
    """
    check_positive_int("version", version, "TF Serving's version folders")
    target = pathlib.Path(base_dir) / str(version)
    if target.exists() and not overwrite:
        raise TfbertError(
            f"{target} already exists; pick another version (--version), or pass --overwrite / overwrite=True to replace it."
        )
    return target


def export_saved_model(model, base_dir, version=None, overwrite=False, keep=None, warmup=True, fused=True,
                       precision="float32", card=None):
    """Writes `model` (from `build_encoder` or `build_classifier`) as a SavedModel to `base_dir/<version>`.

    Writing is atomic: the export is written under a temporary non-numeric name in base_dir
    (`.tmp-<version>-<pid>-*`), which TF Serving ignores, then renamed into place. A staging folder
    left by a killed export is removed by the next export into the same base_dir.

    Args:
        model: tf_keras.Model from `tfbert.build_encoder` (the signatures in the module docstring) or
            `tfbert.build_classifier` (see `ClassifierModule`), or a task module from
            `tfbert.serving.task_export.build_task_module`.
        base_dir: str. The model's folder, e.g. "saved_models/minilm-l6-uncased".
        version: int. Version folder to write. Defaults to one more than the highest existing version (1 if none).
        overwrite: bool. Replace an existing version. Defaults to False.
        keep: int. After writing, delete all but the `keep` newest versions. Defaults to None (keep all).
        warmup: bool. Write `assets.extra/tf_serving_warmup_requests`, replayed by TF Serving at load
            time so the first real request is not the slow one. Defaults to True.
        fused: bool. Trace BERT's inference in fewer, fusible ops on real tokens only
            (`tfbert.models.inference`); False keeps transformers' layers as they are (padding
            positions of `last_hidden_state` then hold transformers' values instead of 0). Defaults to True.
        precision: str. "float32", or "bfloat16": the encoder's matrix multiplications run in bfloat16
            on bfloat16 copies of its dense weights (constants of the graph; the float32 variables stay
            for the reusable `__call__`). It pays on CPUs with AMX and is slower where matrices multiply
            slower in bfloat16 than in float32 (see docs/serving.md); inputs and outputs keep their
            types. Needs fused=True. Defaults to "float32".
        card: dict. Fields of the export's model card (`tfbert.checkpoints.model_card.ModelCard`) that
            the caller knows: training, command, base_model. The card, `assets.extra/README.md`,
            always lists the checkpoint, task, labels, tokenizer options and signatures.

    Returns:
        pathlib.Path of the version folder written.

    Raises:
        TfbertError: the version exists and overwrite is False, or the model is not an encoder.
    """
    if precision not in PRECISIONS:
        raise TfbertError(f"precision must be one of {', '.join(PRECISIONS)}; received precision={precision!r}.")
    if precision != "float32" and not fused:
        raise TfbertError(f"precision={precision!r} computes through tfbert's fused inference graph; drop fused=False.")
    # Every refusal before any work: copying a mixed-precision model to float32 takes a while, and fails
    # with Keras' own error on a model that is not tfbert's.
    if not isinstance(model, TaskModule):
        check_exportable(model)
    base_dir = pathlib.Path(base_dir)
    if version is None:
        version = (existing_versions(base_dir) or [0])[-1] + 1
    check_positive_int("keep", keep, "versions to keep", allow_none=True)
    target = check_version_free(base_dir, version, overwrite)
    model = float32_twin(model)  # a Keras model's training policy does not decide the export's precision
    module = model if isinstance(model, TaskModule) else export_module(model)
    tokenizer = module.tokenizer if isinstance(module, TaskModule) else model.tokenizer
    base_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(base_dir)
    staging = pathlib.Path(tempfile.mkdtemp(dir=base_dir, prefix=f".tmp-{version}-{os.getpid()}-"))
    try:
        # mkdtemp makes the folder private (0700); a server running as another user must read it.
        os.chmod(staging, 0o777 & ~_umask())
        bert_holder = module.model if isinstance(module, TaskModule) else model
        layers = main_layers(bert_holder)
        weights = InferenceWeights(layers, PRECISIONS[precision]) if fused else None
        # The module tracks the weights' variable copies (float32 query/key/value side by side) so that they
        # are saved; bfloat16 copies are constants, saved with the graph.
        module.inference_weights = weights if weights is not None and weights.has_copies else None
        if isinstance(module, EncoderModule):
            # The reusable __call__ (fine-tuning, Keras layers) computes with the variables themselves,
            # so that it follows training; the signatures with the copies (EncoderModule._serve).
            weights = InferenceWeights(layers, stored_qkv=False) if fused else None
        with inference_graph(bert_holder, weights=weights) if fused else contextlib.nullcontext():
            if hasattr(module, "trace_shared"):  # modules whose signatures share a function
                # On its own, inside the save's context: else the save traces it again, and stores its graph
                # (a bfloat16 export's weight constants) twice.
                with save_context.save_context(SAVE_OPTIONS):
                    module.trace_shared()
            signatures = module.signatures()
            tf.saved_model.save(module, str(staging), signatures=signatures, options=SAVE_OPTIONS)
        set_method_names(staging)
        card = {"base_model": getattr(model, "checkpoint_name", None),
                "command": made_by("tfbert.export_saved_model", base_dir=str(base_dir), precision=precision),
                **(card or {})}
        write_export_card(staging, export_card(staging, base_dir.name, module.task, module.labels, tokenizer,
                                               layers[0].config, precision, **card))
        if warmup:
            records = serving_warmup.warmup_records(base_dir.name, signatures, tokenizer.max_length)
            serving_warmup.write_warmup(staging, records)
        if isinstance(module, (ClassifierModule, TaskModule)) and module.labels:
            (staging / LABELS_FILE).parent.mkdir(exist_ok=True)
            (staging / LABELS_FILE).write_text("".join(f"{label}\n" for label in module.labels), encoding="utf-8")
        if target.exists():  # overwrite: move the old version aside first, then swap
            retire(base_dir, target, replacement=staging)
        else:
            os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s", target)
    if keep is not None:
        prune_versions(base_dir, keep)
    return target


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
