"""TensorFlow Serving: warm-up requests, the model config file, and the op check of an export.

- `write_warmup` puts `assets.extra/tf_serving_warmup_requests` (a TFRecord of `PredictionLog`) in an
  export, so TF Serving runs every signature at a few sequence lengths before it takes traffic.
- `update_models_config` writes or updates `models.config` (a `ModelServerConfig` text proto) listing
  every exported model of a folder.
- `check_serving` lists every op an export uses and says which TF Serving can run it: an op TF Serving
  has not linked is the classic failure ("Op type not registered 'FastBertNormalize'").
"""

import functools
import json
import logging
import pathlib

from tfbert.errors import TfbertError
from tfbert.files import write_atomic

logger = logging.getLogger(__name__)

WARMUP_FILE = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"
MODELS_CONFIG = "models.config"
DEFAULT_SERVING_ROOT = "/models"
PYTHON_CALLBACK_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
PREFERRED_TEXT_RELEASE = "2.12.1"  # tensorflow-text ops TF Serving has linked for years
_WARMUP_WORDS = "the quick brown fox jumps over the lazy dog".split()
_WARMUP_BATCH = 8


def _release_key(version):
    return tuple(int(part) for part in version.split("."))


# Warm-up -------------------------------------------------------------------------------------------------

def _warmup_text(word_count):
    return " ".join(_WARMUP_WORDS[i % len(_WARMUP_WORDS)] for i in range(word_count))


def warmup_batches(max_length):
    """The text batches replayed at load: short, medium and full-length texts, alone and in a batch.

    Each word is one token, so the lengths in tokens are about 8, 64 and max_length.
    """
    lengths = sorted({min(6, max_length), min(62, max_length), max_length})
    batches = []
    for words in lengths:
        batches.append([_warmup_text(words)])
        if words <= 62:  # batches of long texts cost seconds at every load and teach a server little more
            batches.append([_warmup_text(words - i % 3) for i in range(_WARMUP_BATCH)])
    return batches


def warmup_records(model_name, signatures, max_length):
    """`PredictionLog` protos: every signature on every warm-up batch.

    Args:
        model_name: str. The served model's name (TF Serving's model_spec.name).
        signatures: dict of signature name to its input names, e.g. {"encode_pair": ["text", "text_pair"]}.
        max_length: int. The export's longest sequence.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    records = []
    for name, inputs in sorted(signatures.items()):
        for batch in warmup_batches(max_length):
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name, signature_name=name))
            for position, input_name in enumerate(inputs):
                texts = batch if position == 0 else list(reversed(batch))  # the pair: other lengths, same batch size
                request.inputs[input_name].CopyFrom(tf.make_tensor_proto([t.encode() for t in texts], dtype=tf.string))
            records.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return records


def write_warmup(export_dir, records):
    """Writes `records` to `export_dir/assets.extra/tf_serving_warmup_requests`."""
    import tensorflow as tf

    path = pathlib.Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def read_warmup(export_dir):
    """The export's warm-up requests, as `PredictionLog` protos."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = pathlib.Path(export_dir) / WARMUP_FILE
    if not path.is_file():
        raise TfbertError(f"{path} is missing: this export has no warm-up requests.")
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]


# models.config -------------------------------------------------------------------------------------------

def exported_models(out_dir):
    """Names of the folders in out_dir holding at least one numeric version with a saved_model.pb."""
    out_dir = pathlib.Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(
        model.name for model in out_dir.iterdir()
        if model.is_dir() and any(v.name.isdigit() and (v / "saved_model.pb").is_file() for v in model.iterdir())
    )


def read_models_config(path):
    """Parses a TF Serving model config file (`ModelServerConfig` text proto)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(pathlib.Path(path).read_text(encoding="utf-8"), config)
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise TfbertError(f"{path} is not a TF Serving model config (ModelServerConfig text proto): {e}. "
                          "Fix or remove it, then export again.") from e
    return config


def update_models_config(out_dir, serving_root=DEFAULT_SERVING_ROOT):
    """Writes or updates `out_dir/models.config` so it lists every model exported in out_dir.

    Each model gets `base_path: "<serving_root>/<name>"`: the path of out_dir as the server sees it
    (`/models` in the docker line of the README). Entries for other models, and fields set by hand
    (version policies, labels), are kept. The file is replaced atomically, since TF Serving may be
    polling it (`--model_config_file_poll_wait_seconds`).

    Returns:
        pathlib.Path of the config file.
    """
    from google.protobuf import text_format

    out_dir = pathlib.Path(out_dir)
    path = out_dir / MODELS_CONFIG
    if path.exists():
        config = read_models_config(path)
    else:
        from tensorflow_serving.config import model_server_config_pb2

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


# check-serving -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def op_table():
    """The committed table of the first tensorflow-text and TensorFlow release registering each op."""
    with open(pathlib.Path(__file__).with_name("data") / "serving_ops.json", encoding="utf-8") as f:
        return json.load(f)


def export_ops(export_dir):
    """{op type: count of nodes} over the export's graphs and function libraries."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = pathlib.Path(export_dir) / "saved_model.pb"
    if not path.is_file():
        raise TfbertError(f"{path} is missing: pass a SavedModel version folder, e.g. saved_models/minilm-l6-uncased/1.")
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as e:  # protobuf raises its own DecodeError, with no common base to name
        raise TfbertError(f"{path} is not a SavedModel protobuf: {e}") from e
    counts = {}
    for meta_graph in proto.meta_graphs:
        nodes = list(meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            nodes.extend(function.node_def)
        for node in nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
    return dict(sorted(counts.items()))


def _running_registry():
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session

    registry = op_def_pb2.OpList()
    registry.ParseFromString(pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList()))
    return {op.name for op in registry.op}


def check_serving(export_dir):
    """Lists the export's ops with their origin and the oldest release having each; finds what TF Serving would refuse.

    Returns:
        dict with `ops` (a row per op type: op, nodes, source "tensorflow" / "tensorflow-text" / "unknown",
        library, first_release), `problems` (strings; empty when the export is servable),
        `warnings`, `min_tensorflow`, `min_tensorflow_text` and `min_tf_serving`.
    """
    import tensorflow_text  # noqa: F401 - registers its ops, so the registry below has them too

    table = op_table()
    text_ops, core_ops = table["tensorflow_text"]["ops"], table["tensorflow"]["ops"]
    registry = _running_registry()
    rows, problems, warnings = [], [], []
    for op, nodes in export_ops(export_dir).items():
        row = {"op": op, "nodes": nodes, "library": None, "first_release": None}
        if op in PYTHON_CALLBACK_OPS:
            row["source"] = "python"
            problems.append(f"{op} calls back into Python ({nodes} nodes): TF Serving has no Python and cannot run it. "
                            "Rebuild the model without tf.py_function / tf.numpy_function.")
        elif op in text_ops:
            row.update(source="tensorflow-text", library=text_ops[op]["library"], first_release=text_ops[op]["first_release"])
            if _release_key(row["first_release"]) > _release_key(PREFERRED_TEXT_RELEASE):
                warnings.append(f"{op} first appears in tensorflow-text {row['first_release']}: TF Serving older than "
                                f"{'.'.join(row['first_release'].split('.')[:2])} will refuse the export (Op type not registered).")
        elif op in core_ops or op in registry:
            row.update(source="tensorflow", first_release=core_ops.get(op))
            if row["first_release"] is None:
                warnings.append(f"{op} is a TensorFlow op without a Python wrapper, so its first release is not in "
                                "the op table; check that the TF Serving in use has it.")
        else:
            row["source"] = "unknown"
            problems.append(f"{op} is registered by neither TensorFlow nor tensorflow-text: TF Serving will refuse the "
                            "export with \"Op type not registered\" unless it is built with that op library.")
        rows.append(row)
    text_releases = [r["first_release"] for r in rows if r["source"] == "tensorflow-text"]
    core_releases = [r["first_release"] for r in rows if r["source"] == "tensorflow" and r["first_release"]]
    min_text = max(text_releases, key=_release_key, default=None)
    min_core = max(core_releases, key=_release_key, default=None)
    minors = [".".join(v.split(".")[:2]) for v in (min_text, min_core) if v]
    return {
        "export_dir": str(export_dir),
        "ops": rows,
        "problems": problems,
        "warnings": warnings,
        "min_tensorflow_text": min_text,
        "min_tensorflow": min_core,
        "min_tf_serving": max(minors, key=_release_key) if minors else None,
        # A first release equal to the oldest release inspected means "that release or earlier".
        "oldest_inspected": {"tensorflow": table["tensorflow"]["releases_inspected"][0],
                             "tensorflow-text": table["tensorflow_text"]["releases_inspected"][0]},
    }


def format_report(report):
    """The check-serving report as text: a table of ops, then the verdict."""
    lines = [f"SavedModel: {report['export_dir']}", "", f"{'op':32} {'nodes':>6}  {'source':16} {'first release':14} library"]
    for row in report["ops"]:
        first = row["first_release"] or ("-" if row["source"] in ("python", "unknown") else "?")
        if first == report["oldest_inspected"].get(row["source"]):
            first = f"<={first}"
        lines.append(f"{row['op']:32} {row['nodes']:>6}  {row['source']:16} {first:14} {row['library'] or ''}")
    text_count = sum(r["source"] == "tensorflow-text" for r in report["ops"])
    lines += ["", f"{len(report['ops'])} op types: {text_count} from tensorflow-text, "
                  f"{sum(r['source'] == 'tensorflow' for r in report['ops'])} from TensorFlow."]
    if report["min_tf_serving"]:
        lines.append(f"Needs TensorFlow >= {report['min_tensorflow']} and tensorflow-text >= {report['min_tensorflow_text']} "
                     f"ops: TF Serving >= {report['min_tf_serving']} (TF Serving 2.N links TensorFlow 2.N and tensorflow-text 2.N).")
    lines += [f"warning: {w}" for w in report["warnings"]]
    lines += [f"error: {p}" for p in report["problems"]]
    lines.append("FAIL: TF Serving cannot run this export." if report["problems"] else "OK: TF Serving can run this export.")
    return "\n".join(lines)
