"""The TF Serving path: TensorFlow's C API loading an export, warm-up, models.config, load and bad input."""

import glob
import json
import os
import pathlib
import re
import shutil
import struct
import subprocess
import threading

import numpy as np
import pytest
import tensorflow as tf

from conftest import SEED_IDS, SEED_SENTENCE, debian_texts, read_jsonl, shared_file, valid_ids
from tfbert.serving import models_config, op_check, warmup
from tfbert.errors import TfbertError
from tfbert.serving.export import export_saved_model
from tfbert.serving.versions import prune_versions
from tfbert.serving.versions import existing_versions

SIGNATURE_INPUTS = {
    "serving_default": ["text"], "tokenize": ["text"], "embed": ["text"],
    "encode_pair": ["text", "text_pair"], "tokenize_pair": ["text", "text_pair"],
    "tokenize_with_offsets": ["text"], "tokenize_pair_with_offsets": ["text", "text_pair"],
}
AWKWARD = [
    b"", b"   \t\n  ", b"\x00\x01\x02\x7f", b"\xff\xfe not \x80 UTF-8 \xc3", b"[CLS] literal [MASK] tokens [SEP]",
    "café naïve Ünïcödé 中文字符 😀".encode(), b"\xe2\x80\x8b\xe2\x80\x8b",
]
TF_DTYPES = {1: np.float32, 3: np.int32, 9: np.int64}
TF_STRING = 7


# The C API runner -------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def c_runner(tmp_path_factory):
    """tests/serving_c_api.c compiled with the machine's C compiler against the tensorflow wheel's C API."""
    folder = tmp_path_factory.mktemp("c_api")
    binary = folder / "serving_c_api"
    include, lib = tf.sysconfig.get_include(), tf.sysconfig.get_lib()
    command = ["cc", "-std=c11", "-O1", "-Wall", "-Werror", "-o", str(binary), str(pathlib.Path(__file__).with_name("serving_c_api.c")),
               f"-I{include}", f"-L{lib}", "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2", f"-Wl,-rpath,{lib}"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr}"
    import tensorflow_text

    # TF Serving links tensorflow-text's ops into its binary; the C program loads the same op libraries.
    libraries = sorted(glob.glob(os.path.join(os.path.dirname(tensorflow_text.__file__), "python", "**", "_*.so"), recursive=True))
    assert libraries
    (folder / "op_libraries.txt").write_text("\n".join(libraries))
    return binary, folder / "op_libraries.txt"


def signature_defs(export_dir):
    """{signature: (inputs {name: tensor}, outputs {name: tensor})} read from saved_model.pb, as TF Serving reads it."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel.FromString((pathlib.Path(export_dir) / "saved_model.pb").read_bytes())
    (meta_graph,) = [m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags]
    return {name: ({k: v.name for k, v in s.inputs.items()}, {k: v.name for k, v in s.outputs.items()})
            for name, s in meta_graph.signature_def.items()}


def _string(data):
    return struct.pack("<I", len(data)) + data


def run_c_api(c_runner, export_dir, tmp_path, requests):
    """Runs [(signature, {input: [bytes]})] in one C process; returns a list of {output: ndarray}."""
    binary, libraries = c_runner
    signatures = signature_defs(export_dir)
    args, names = [], []
    for i, (signature, inputs) in enumerate(requests):
        input_tensors, output_tensors = signatures[signature]
        body = struct.pack("<I", len(inputs))
        for name, texts in inputs.items():
            body += _string(input_tensors[name].encode()) + struct.pack("<I", len(texts)) + b"".join(map(_string, texts))
        output_names = sorted(output_tensors)
        body += struct.pack("<I", len(output_names)) + b"".join(_string(output_tensors[n].encode()) for n in output_names)
        (tmp_path / f"request-{i}").write_bytes(body)
        args += [tmp_path / f"request-{i}", tmp_path / f"output-{i}"]
        names.append(output_names)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run([binary, export_dir, libraries, *args], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return [_read_outputs(tmp_path / f"output-{i}", output_names) for i, output_names in enumerate(names)]


def _read_outputs(path, names):
    data, offset, outputs = path.read_bytes(), 0, {}
    for name in names:
        dtype, rank = struct.unpack_from("<II", data, offset)
        offset += 8
        shape = struct.unpack_from(f"<{rank}q", data, offset)
        offset += 8 * rank
        if dtype == TF_STRING:
            strings = []
            for _ in range(int(np.prod(shape))):
                (length,) = struct.unpack_from("<I", data, offset)
                strings.append(data[offset + 4:offset + 4 + length])
                offset += 4 + length
            outputs[name] = np.array(strings, dtype=object).reshape(shape)
            continue
        (size,) = struct.unpack_from("<Q", data, offset)
        offset += 8
        outputs[name] = np.frombuffer(data[offset:offset + size], TF_DTYPES[dtype]).reshape(shape)
        offset += size
    assert offset == len(data)
    return outputs


@pytest.fixture(scope="module")
def loaded_default(default_export):
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(str(default_export[1]))


def test_c_api_serves_every_signature_like_python(c_runner, default_export, loaded_default, tmp_path):
    _, export_dir = default_export
    texts = [SEED_SENTENCE.encode()] + [t.encode() for t in debian_texts("dev", 6)] + AWKWARD
    pairs = list(reversed(texts))
    requests = []
    for signature, inputs in sorted(SIGNATURE_INPUTS.items()):
        requests.append((signature, {name: texts if name == "text" else pairs for name in inputs}))
        requests.append((signature, {name: [] for name in inputs}))  # the empty batch
    results = run_c_api(c_runner, export_dir, tmp_path, requests)

    worst = 0.0
    for (signature, inputs), from_c in zip(requests, results):
        from_python = loaded_default.signatures[signature](**{k: tf.constant(v, tf.string) for k, v in inputs.items()})
        assert sorted(from_c) == sorted(from_python), signature
        for name, value in from_python.items():
            value = value.numpy()
            assert from_c[name].shape == value.shape and from_c[name].dtype == value.dtype, (signature, name)
            if value.size:
                worst = max(worst, float(np.abs(from_c[name].astype(np.float64) - value).max()))
    print(f"C API vs Python, max abs difference over all signatures: {worst:.3g}")
    assert worst == 0.0  # the same graph and kernels: bit-identical, as docs/serving.md says
    tokenized = results[[s for s, _ in requests].index("tokenize")]
    assert valid_ids(tokenized)[0] == SEED_IDS
    assert valid_ids(tokenized)[len(texts) - len(AWKWARD)] == [101, 102]  # b"" is [CLS] [SEP]


# Warm-up ---------------------------------------------------------------------------------------------------

def test_warmup_covers_every_signature_and_replays(default_export, loaded_default):
    _, export_dir = default_export
    records = warmup.read_warmup(export_dir)
    requests = [r.predict_log.request for r in records]
    inputs_of = {**SIGNATURE_INPUTS, "serve_examples": ["examples"]}  # serialized tf.Examples of the same texts
    assert {r.model_spec.signature_name for r in requests} == set(inputs_of)
    assert {r.model_spec.name for r in requests} == {"minilm-l6-uncased"}
    lengths = set()
    for request in requests:
        signature = request.model_spec.signature_name
        assert sorted(request.inputs) == sorted(inputs_of[signature])
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = loaded_default.signatures[signature](**inputs)
        batch = int(next(iter(inputs.values())).shape[0])
        for value in outputs.values():
            assert value.shape[0] == batch and np.isfinite(value.numpy()).all()
        if signature == "tokenize":
            lengths.add(int(outputs["input_ids"].shape[1]))
    assert min(lengths) <= 16 and 32 <= sorted(lengths)[1] <= 128 and max(lengths) == 512, lengths
    # docs/serving.md: 40 requests, each signature on single texts of three lengths and batches of 8 of the two shorter.
    assert len(records) == 40 <= 1000  # TF Serving replays at most 1000 warm-up records
    for signature, names in inputs_of.items():
        sizes = [int(tf.make_ndarray(r.inputs[names[0]]).shape[0]) for r in requests if r.model_spec.signature_name == signature]
        assert sorted(sizes) == [1, 1, 1, 8, 8], (signature, sizes)


# Versions and models.config ----------------------------------------------------------------------------------

def test_keep_prunes_older_versions(tmp_path, tiny_encoder, tiny_export):
    base = tmp_path / "tiny"
    for version in (1, 2):  # two earlier versions: copies of a real export
        shutil.copytree(tiny_export, base / str(version))
    assert existing_versions(base) == [1, 2]
    latest = export_saved_model(tiny_encoder, base, keep=2, warmup=False)
    assert latest == base / "3" and existing_versions(base) == [2, 3]
    assert sorted(p.name for p in base.iterdir()) == ["2", "3"]
    assert prune_versions(base, 1) == [2] and existing_versions(base) == [3]


def test_models_config_lists_every_model(tmp_path, tiny_checkpoint):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from test_cli import tfbert

    out = tmp_path / "saved_models"
    result = tfbert("export", "--model", tiny_checkpoint, "--name", "tiny-a", "--out-dir", out, "--models-config", "--keep", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    (out / "tiny-b").mkdir()
    os.symlink(out / "tiny-a" / "1", out / "tiny-b" / "7")
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((out / "models.config").read_text(), config)
    assert [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config] == [
        ("tiny-a", "/models/tiny-a", "tensorflow")]

    # A hand-written policy and another server's model survive an update.
    entry = config.model_config_list.config[0]
    entry.model_version_policy.all.SetInParent()
    config.model_config_list.config.add(name="elsewhere", base_path="/data/elsewhere", model_platform="tensorflow")
    (out / "models.config").write_text(text_format.MessageToString(config))
    models_config.update_models_config(out, serving_root="/srv/models/")
    updated = models_config.read_models_config(out / "models.config")
    by_name = {c.name: c for c in updated.model_config_list.config}
    assert sorted(by_name) == ["elsewhere", "tiny-a", "tiny-b"]
    assert by_name["tiny-a"].base_path == "/srv/models/tiny-a" and by_name["tiny-a"].model_version_policy.HasField("all")
    assert by_name["elsewhere"].base_path == "/data/elsewhere"
    assert by_name["tiny-b"].base_path == "/srv/models/tiny-b"


def test_models_config_that_is_not_a_config_is_reported(tmp_path):
    (tmp_path / "models.config").write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(TfbertError, match="not a TF Serving model config"):
        models_config.update_models_config(tmp_path)


KILLED_EXPORT = r"""
import sys
from tfbert.models.encoder import build_encoder
from tfbert.serving.export import export_saved_model
export_saved_model(build_encoder(sys.argv[1]), sys.argv[2])
"""


def test_killed_export_leaves_no_version(tmp_path, tiny_checkpoint, tiny_encoder):
    """Killed half-way: after saved_model.pb, before the variables and the rename."""
    import sys
    import time

    base = tmp_path / "tiny"
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    process = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, str(tiny_checkpoint), str(base)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = "saved_model.pb"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        staged = [p for p in base.glob(".tmp-*") if (p / marker).exists()] if base.is_dir() else []
        if staged:
            process.kill()
            break
        time.sleep(0.005)
    process.wait()
    assert process.returncode == -9, "the export finished before it could be killed"
    assert existing_versions(base) == []  # nothing a server would load
    assert [p.name.startswith(".tmp-1-") for p in base.iterdir()] == [True]

    path = export_saved_model(tiny_encoder, base, warmup=False)  # the next export starts clean
    assert path == base / "1" and sorted(p.name for p in base.iterdir()) == ["1"]


# check-serving ----------------------------------------------------------------------------------------------

def test_check_serving_default_export(default_export):
    from test_cli import tfbert

    result = tfbert("check-serving", default_export[1], "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["problems"] == [] and report["warnings"] == []
    text_ops = {r["op"]: r["first_release"] for r in report["ops"] if r["source"] == "tensorflow-text"}
    assert set(text_ops) == {"NormalizeUTF8", "RegexSplitWithOffsets", "WordpieceTokenizeWithOffsets",
                             "NormalizeUTF8WithOffsetsMap", "FindSourceOffsets"}  # the last two for the offsets
    assert all(op_check._release_key(v) <= op_check._release_key("2.12.1") for v in text_ops.values()), text_ops
    assert {r["source"] for r in report["ops"]} == {"tensorflow", "tensorflow-text"}
    assert all(r["first_release"] for r in report["ops"])  # the table knows every op of the export

    text = tfbert("check-serving", default_export[0])  # a model folder: its latest version
    assert text.returncode == 0 and "OK: TF Serving can run this export." in text.stdout
    assert f"TF Serving >= {report['min_tf_serving']}" in text.stdout


def test_reading_a_folder_without_a_saved_model_is_a_clear_error(tmp_path):
    """check-serving, model cards and method names read saved_model.pb through one reader, which names
    the file and what is wrong with it."""
    with pytest.raises(TfbertError, match=r"saved_model.pb is missing: pass a SavedModel version folder"):
        op_check.export_nodes(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xff\xff\xff")
    with pytest.raises(TfbertError, match=r"saved_model.pb is not a SavedModel protobuf"):
        op_check.export_nodes(tmp_path)


def test_check_serving_fails_on_python_callbacks_and_unknown_ops(tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    from test_cli import tfbert

    class WithCallback(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, text):
            return {"length": tf.py_function(lambda t: tf.strings.length(t), [text], tf.int32)}

    module = WithCallback()
    tf.saved_model.save(module, str(tmp_path / "callback" / "1"), signatures={"serving_default": module.serve})
    result = tfbert("check-serving", tmp_path / "callback")
    assert result.returncode == 1
    assert "error: EagerPyFunc calls back into Python" in result.stdout
    assert "FAIL: TF Serving cannot run this export." in result.stdout

    # An op from a library TF Serving does not link: renamed in the graph, as an unlinked op would read.
    path = tmp_path / "callback" / "1" / "saved_model.pb"
    proto = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "EagerPyFunc":
                node.op = "FastBertNormalizeFromTheFuture"
    path.write_bytes(proto.SerializeToString())
    report = op_check.check_serving(path.parent)
    assert [p.split(" ")[0] for p in report["problems"]] == ["FastBertNormalizeFromTheFuture"]
    assert "Op type not registered" in report["problems"][0]


def test_op_table_covers_installed_tensorflow_text():
    import importlib.metadata

    import tensorflow_text  # noqa: F401

    table = op_check.op_table()["tensorflow_text"]
    installed = importlib.metadata.version("tensorflow-text")
    assert installed in table["releases_inspected"]
    registry = op_check._running_registry()
    assert set(table["ops"]) <= registry  # every op in the table is registered by the installed tensorflow-text
    root = pathlib.Path(tensorflow_text.__file__).parent
    for op, entry in table["ops"].items():
        assert list(root.rglob(entry["library"])), (op, entry)


# Load and bad input, through the loaded SavedModel -------------------------------------------------------------

@pytest.fixture(scope="module")
def loaded_tiny(tiny_export):
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(str(tiny_export))


def _mixed_texts(count):
    corpus = [case["text"] for case in read_jsonl(shared_file("data", "tokenizer-cases.jsonl")) if "text" in case]
    texts = debian_texts("dev") + corpus
    return [texts[i % len(texts)] for i in range(count)]


def test_concurrent_calls_equal_sequential_calls(loaded_tiny):
    batches = [tf.constant(_mixed_texts(64)[i::8][:8] + [AWKWARD[i % len(AWKWARD)]]) for i in range(8)]
    signatures = ["serving_default", "tokenize", "embed", "encode_pair"]

    def call(signature, batch):
        kwargs = {"text": batch, "text_pair": tf.reverse(batch, [0])} if signature == "encode_pair" else {"text": batch}
        return {k: v.numpy() for k, v in loaded_tiny.signatures[signature](**kwargs).items()}

    sequential = {(s, i): call(s, b) for s in signatures for i, b in enumerate(batches)}
    concurrent, errors = {}, []

    def worker(i):
        try:
            for _ in range(3):
                for s in signatures:
                    concurrent.setdefault((s, i), []).append(call(s, batches[i]))
        except Exception as e:  # reported below: an exception in a thread would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for key, results in concurrent.items():
        assert len(results) == 3
        for result in results:
            for name, value in sequential[key].items():
                np.testing.assert_allclose(result[name], value, rtol=0, atol=1e-6, err_msg=str((key, name)))


def test_ten_thousand_strings_in_one_batch(loaded_tiny):
    texts = _mixed_texts(10_000)
    whole = loaded_tiny.signatures["serving_default"](text=tf.constant(texts))
    tokens = loaded_tiny.signatures["tokenize"](text=tf.constant(texts))
    hidden = whole["last_hidden_state"].numpy()
    assert hidden.shape[0] == 10_000 and whole["pooled_output"].shape == (10_000, 32)
    assert np.isfinite(hidden).all()
    ids = valid_ids(tokens)
    for start in range(0, 10_000, 1000):  # the same rows in small batches: same ids, same states
        part = loaded_tiny.signatures["serving_default"](text=tf.constant(texts[start:start + 50]))
        part_ids = valid_ids(loaded_tiny.signatures["tokenize"](text=tf.constant(texts[start:start + 50])))
        assert part_ids == ids[start:start + 50]
        for row, row_ids in enumerate(part_ids):
            np.testing.assert_allclose(part["last_hidden_state"].numpy()[row, :len(row_ids)],
                                       hidden[start + row, :len(row_ids)], rtol=0, atol=1e-5)


def test_bad_input_returns_well_formed_outputs(loaded_tiny, reference_tokenizer):
    reference = reference_tokenizer()
    megabyte = ("lorem ipsum dolor " * 60_000)[:1_000_000].encode()
    texts = AWKWARD + [megabyte, b"\t" * 1000, "\u3000\u2028\u0085 \u00a0".encode()]
    tokens = loaded_tiny.signatures["tokenize"](text=tf.constant(texts))
    outputs = loaded_tiny.signatures["serving_default"](text=tf.constant(texts))
    embedded = loaded_tiny.signatures["embed"](text=tf.constant(texts))
    ids = valid_ids(tokens)
    for text, row in zip(texts, ids):
        expected = reference(text.decode("utf-8", errors="replace"), truncation=True, max_length=128)["input_ids"]
        assert row == expected, text[:60]
    assert len(ids[len(AWKWARD)]) == 128  # the megabyte string, truncated to max_length
    for index in (1, 2, len(AWKWARD) + 1, len(AWKWARD) + 2):  # whitespace or control characters only
        assert ids[index] == [101, 102]
    assert outputs["last_hidden_state"].shape == (len(texts), 128, 32)
    for value in (outputs["last_hidden_state"], outputs["pooled_output"], embedded["sentence_embedding"]):
        assert np.isfinite(value.numpy()).all()
    np.testing.assert_allclose(np.linalg.norm(embedded["sentence_embedding"].numpy(), axis=1), 1.0, atol=1e-5)

    empty = {s: loaded_tiny.signatures[s](**{n: tf.constant([], tf.string) for n in SIGNATURE_INPUTS[s]})
             for s in SIGNATURE_INPUTS}
    assert empty["serving_default"]["last_hidden_state"].shape[::2] == (0, 32)
    assert empty["embed"]["sentence_embedding"].shape == (0, 32)
    assert all(v.shape[0] == 0 for outputs in empty.values() for v in outputs.values())


def test_readme_rest_examples_are_true(loaded_default):
    """The REST requests of docs/serving.md with exact JSON responses (the tokenize signatures), from the export."""
    from conftest import REPO

    readme = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    examples = re.findall(r"-d '(\{[^\n]*\})'\n```\n```json\n(.*?)\n```", readme, flags=re.S)
    assert sorted(json.loads(request)["signature_name"] for request, _ in examples) == [
        "tokenize", "tokenize_pair", "tokenize_with_offsets"]
    for request, response in examples:
        assert rest_response(loaded_default, json.loads(request)) == json.loads(response), request


def rest_response(loaded, request):
    """The JSON body TF Serving's REST predict API answers to a request, from the loaded export.

    Row format ("instances"): "predictions", one entry per instance, an object of outputs, or the bare
    value when the signature has one output. Columnar format ("inputs"): "outputs", an object of
    whole-batch outputs, or the bare value when there is one.
    """
    signature = request.get("signature_name", "serving_default")
    names = SIGNATURE_INPUTS[signature]
    if "instances" in request:
        instances = request["instances"]
        columns = {n: [row if len(names) == 1 else row[n] for row in instances] for n in names}
    else:
        inputs = request["inputs"]
        columns = inputs if isinstance(inputs, dict) else {names[0]: inputs}
    outputs = {k: v.numpy().tolist() for k, v in loaded.signatures[signature](**{n: tf.constant(v) for n, v in columns.items()}).items()}
    if "instances" in request:
        rows = [{k: v[i] for k, v in outputs.items()} for i in range(len(instances))]
        return {"predictions": [next(iter(r.values())) if len(r) == 1 else r for r in rows]}
    return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}


def abbreviated(value):
    """JSON as docs/serving.md prints long float arrays: the first 3 floats (4 decimals), `...N floats`,
    and of a sequence of token vectors the first one and `...N tokens`."""
    if isinstance(value, dict):  # keys sorted: a JSON object's key order carries no meaning
        return "{" + ", ".join(f"{json.dumps(k)}: {abbreviated(v)}" for k, v in sorted(value.items())) + "}"
    if value and all(isinstance(x, float) for x in value):
        return "[" + ", ".join(repr(round(x, 4)) for x in value[:3]) + f", ...{len(value)} floats]"
    if value and all(isinstance(x, list) and x and isinstance(x[0], list) for x in value):  # [batch][seq][hidden]
        return "[" + ", ".join(f"[{abbreviated(tokens[0])}, ...{len(tokens)} tokens]" for tokens in value) + "]"
    return "[" + ", ".join(abbreviated(x) for x in value) + "]"


def test_readme_rest_examples_of_float_outputs_are_true(loaded_default):
    """serving_default, encode_pair and embed: the abbreviated JSON of docs/serving.md, built from the export."""
    from conftest import REPO

    readme = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    examples = re.findall(r"-d '(\{[^\n]*\})'\n```\n```\n(.*?)\n```", readme, flags=re.S)
    assert sorted(json.loads(request)["signature_name"] for request, _ in examples) == \
        ["embed", "encode_pair", "serving_default"]
    for request, response in examples:
        ours = abbreviated(rest_response(loaded_default, json.loads(request)))
        assert re.sub(r"\s+", " ", response) == ours, (request, ours)
