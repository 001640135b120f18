"""Finding and loading exports: missing, corrupt and wrong-kind SavedModels give one clear error everywhere."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from test_cli import assert_one_line_error, tfbert
from tfbert.errors import TfbertError
from tfbert.serving.loading import load_export
from tfbert.serving.versions import latest_version, resolve_export
from tfbert.serving.saved_model_layer import SavedModelLayer


class _NotAnEncoder(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def double(self, x):
        return {"y": x * 2}


@pytest.fixture(scope="module")
def broken_exports(tmp_path_factory, tiny_export):
    """{kind: (model folder, the error it must produce)} for three ways an export can be wrong."""
    root = tmp_path_factory.mktemp("broken")
    corrupt = root / "corrupt"
    shutil.copytree(tiny_export, corrupt / "1")
    graph = corrupt / "1" / "saved_model.pb"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])  # a copy cut off half-way
    no_variables = root / "no-variables"
    shutil.copytree(tiny_export, no_variables / "1")
    for file in (no_variables / "1" / "variables").iterdir():
        file.unlink()
    other = root / "other-kind"
    module = _NotAnEncoder()
    tf.saved_model.save(module, str(other / "3"), signatures={"double": module.double})
    return {
        "missing": (root / "missing", r"missing is neither a SavedModel folder nor a folder of numeric versions"),
        "corrupt": (corrupt, r"cannot load the SavedModel in .*corrupt/1: it is corrupt or incomplete \(Cannot parse"),
        "no-variables": (no_variables, r"cannot load the SavedModel in .*no-variables/1: it is corrupt or incomplete"),
        "other-kind": (other, r"other-kind/3 has no 'embed' signature \(it has double\)"),
    }


def test_resolve_picks_the_highest_numeric_version(tmp_path, tiny_export):
    for name in ("2", "10", "tmp-11", ".tmp-12-999"):
        (tmp_path / name).mkdir()
    (tmp_path / "11").write_text("a file, not a version")
    assert resolve_export(tmp_path) == str(tmp_path / "10")  # numerically, not as text; folders only
    assert latest_version(tiny_export) == tiny_export  # a version folder is itself


@pytest.mark.parametrize("kind", ["missing", "corrupt", "no-variables", "other-kind"])
def test_load_export_errors(broken_exports, kind):
    folder, pattern = broken_exports[kind]
    with pytest.raises(TfbertError, match=pattern):
        load_export(folder, signature="embed")


@pytest.mark.parametrize("kind", ["missing", "corrupt", "other-kind"])
def test_saved_model_layer_errors(broken_exports, kind):
    folder, pattern = broken_exports[kind]
    if kind == "other-kind":
        pattern = r"other-kind/3 is not a reusable encoder export"
    with pytest.raises(TfbertError, match=pattern):
        SavedModelLayer(str(folder))


@pytest.mark.parametrize("kind", ["missing", "corrupt", "other-kind"])
def test_embed_corpus_cli_errors(broken_exports, kind, tmp_path):
    folder, pattern = broken_exports[kind]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one text\nanother\n", encoding="utf-8")
    result = tfbert("embed-corpus", "--input", corpus, "--output", tmp_path / "out.npy", "--saved-model", folder)
    assert_one_line_error(result, pattern)
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("kind", ["missing", "corrupt", "other-kind"])
def test_beam_cli_errors(broken_exports, kind, tmp_path):
    folder, pattern = broken_exports[kind]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"text": "one text"}) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-m", "tfbert.beam", "--input", str(corpus), "--output",
                             str(tmp_path / "out" / "e"), "--saved-model", str(folder), "--runner", "DirectRunner"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 2
    assert_one_line_error(result, pattern, prefix="tfbert.beam: error:")
    assert not (tmp_path / "out").exists()
