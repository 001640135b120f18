"""Shared fixtures: the default checkpoint, a tiny random checkpoint, the reference implementations."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("TFBERT_SHARED", REPO.parent / "shared"))
SEED_SENTENCE = "The quick brown fox jumps over the lazy dog fox"
SEED_IDS = [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 4419, 102]
# The tiny random BERTs of the fast tests: 2 layers, hidden 32, the default vocabulary.
TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=128)


def shared_file(*parts):
    path = SHARED.joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"{path} is missing: the tests need the project's shared/ folder beside the repo (or TFBERT_SHARED).")
    return path


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def debian_texts(split="dev", count=None):
    with open(shared_file("data", "debian-sections", f"{split}.csv"), encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    return texts[:count] if count else texts


def run_python(code, *args, timeout=600, cwd=None, env=None):
    """Runs Python code in a fresh process (in folder cwd, with `env` added); returns CompletedProcess (text)."""
    # transformers sets TF_USE_LEGACY_KERAS=1 in this process; a child inheriting it would import
    # tf_keras with tensorflow, which a fresh user process does not.
    env = {**{k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}, **(env or {})}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def valid_ids(outputs):
    """Per row, the input ids under the attention mask, as lists of ints."""
    ids, mask = np.asarray(outputs["input_ids"]), np.asarray(outputs["attention_mask"])
    return [row[m == 1].tolist() for row, m in zip(ids, mask)]


@pytest.fixture(scope="session")
def default_checkpoint():
    from tfbert.checkpoints.checkpoint import load_checkpoint

    return load_checkpoint()


@pytest.fixture(scope="session")
def vocab_file(default_checkpoint):
    return str(default_checkpoint.vocab_file)


@pytest.fixture(scope="session")
def reference_tokenizer(vocab_file):
    """transformers' Python BertTokenizer on the default vocabulary, by do_lower_case (and strip_accents)."""
    from transformers import BertTokenizer

    cache = {}

    def get(do_lower_case=True, strip_accents=None):
        key = (do_lower_case, strip_accents)
        if key not in cache:
            cache[key] = BertTokenizer(vocab_file, do_lower_case=do_lower_case, strip_accents=strip_accents)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def default_encoder():
    from tfbert.models.encoder import build_encoder

    return build_encoder()


@pytest.fixture(scope="session")
def torch_reference(default_checkpoint):
    """transformers' PyTorch BertModel and Python BertTokenizer on the default checkpoint."""
    import torch
    from transformers import BertModel, BertTokenizer

    torch.set_num_threads(2)
    folder = str(default_checkpoint.folder)
    return BertTokenizer.from_pretrained(folder), BertModel.from_pretrained(folder).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, vocab_file):
    """A random 2-layer BERT (hidden 32) with the default vocabulary, saved by PyTorch transformers."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, **TINY_BERT)
    BertModel(config).eval().save_pretrained(folder, safe_serialization=True)
    BertTokenizer(vocab_file).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def default_export(tmp_path_factory, default_encoder):
    """The default encoder exported (with warm-up requests) as saved_models/minilm-l6-uncased/1."""
    from tfbert.serving.export import export_saved_model

    base = tmp_path_factory.mktemp("saved_models") / "minilm-l6-uncased"
    return base, export_saved_model(default_encoder, base)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_checkpoint):
    from tfbert.models.encoder import build_encoder

    return build_encoder(str(tiny_checkpoint))


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_encoder):
    """The tiny random BERT exported: fast to load and run, for load and bad-input tests."""
    from tfbert.serving.export import export_saved_model

    return export_saved_model(tiny_encoder, tmp_path_factory.mktemp("saved_models") / "tiny")
