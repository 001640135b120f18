"""TF Serving's model config file: `models.config` (a `ModelServerConfig` text proto) listing every model
exported in a folder, written or updated in place."""

import pathlib

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfbert.defaults import SERVING_ROOT
from tfbert.errors import TfbertError
from tfbert.files import write_atomic
from tfbert.serving.versions import SAVED_MODEL_FILE

MODELS_CONFIG = "models.config"


def exported_models(out_dir):
    """Names of the folders in out_dir holding at least one numeric version with a saved_model.pb."""
    out_dir = pathlib.Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(
        model.name for model in out_dir.iterdir()
        if model.is_dir() and any(v.name.isdigit() and (v / SAVED_MODEL_FILE).is_file() for v in model.iterdir())
    )


def read_models_config(path):
    """Parses a TF Serving model config file (`ModelServerConfig` text proto)."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(pathlib.Path(path).read_text(encoding="utf-8"), config)
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise TfbertError(f"{path} is not a TF Serving model config (ModelServerConfig text proto): {e}. "
                          "Fix or remove it, then export again.") from e
    return config


def update_models_config(out_dir, serving_root=SERVING_ROOT):
    """Writes or updates `out_dir/models.config` so it lists every model exported in out_dir.

    Each model gets `base_path: "<serving_root>/<name>"`: the path of out_dir as the server sees it
    (`/models` in the docker line of the README). Entries for other models, and fields set by hand
    (version policies, labels), are kept. The file is replaced atomically, since TF Serving may be
    polling it (`--model_config_file_poll_wait_seconds`).

    Returns:
        pathlib.Path of the config file.
    """
    out_dir = pathlib.Path(out_dir)
    path = out_dir / MODELS_CONFIG
    if path.exists():
        config = read_models_config(path)
    else:
        config = model_server_config_pb2.ModelServerConfig()
    if config.WhichOneof("config") == "custom_model_config":
        raise TfbertError(f"{path} holds a custom_model_config; tfbert only writes model_config_list entries.")
    entries = {entry.name: entry for entry in config.model_config_list.config}
    for name in exported_models(out_dir):
        entry = entries.get(name) or config.model_config_list.config.add(name=name)
        entry.base_path = f"{serving_root.rstrip('/')}/{name}"
        entry.model_platform = "tensorflow"
    write_atomic(path, text_format.MessageToString(config))
    return path
