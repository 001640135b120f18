"""The tfbert command line, run as a user runs it: in a new process."""

import re
import subprocess
import sys

import pytest

from conftest import SEED_IDS, SEED_SENTENCE


def tfbert(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tfbert", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


def assert_one_line_error(result, pattern, prefix="tfbert: error:"):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert len(errors) == 1 and re.search(pattern, errors[0]), result.stderr[-2000:]


def test_help():
    for args in ([], ["embed"], ["export"], ["check-serving"]):
        result = tfbert(*args, "--help")
        assert result.returncode == 0 and "usage: tfbert" in result.stdout


def test_export_then_embed_through_saved_model(tmp_path, tiny_checkpoint):
    result = tfbert("export", "--model", tiny_checkpoint, "--name", "tiny", "--out-dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(tmp_path / "tiny" / "1")
    again = tfbert("export", "--model", tiny_checkpoint, "--name", "tiny", "--out-dir", tmp_path, "--version", "1")
    assert_one_line_error(again, "already exists")

    result = tfbert("embed", "--saved-model", tmp_path / "tiny", SEED_SENTENCE)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"input_ids: {SEED_IDS}" in result.stdout
    assert "last_hidden_state: shape (1, 12, 32)" in result.stdout
    assert "pooled_output: shape (1, 32)" in result.stdout

    result = tfbert("export", "--model", tiny_checkpoint, "--name", "tiny", "--out-dir", tmp_path, "--precision", "bfloat16")
    assert result.returncode == 0 and result.stdout.strip() == str(tmp_path / "tiny" / "2"), result.stderr[-2000:]
    result = tfbert("check-serving", tmp_path / "tiny")
    assert result.returncode == 0 and "OK: TF Serving can run this export." in result.stdout, result.stderr[-2000:]
    result = tfbert("embed", "--saved-model", tmp_path / "tiny", SEED_SENTENCE)
    assert result.returncode == 0 and "last_hidden_state: shape (1, 12, 32)" in result.stdout, result.stderr[-2000:]


def test_embed_in_process_model(tiny_checkpoint):
    result = tfbert("embed", "--model", tiny_checkpoint, SEED_SENTENCE, "a second text")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"input_ids: {SEED_IDS}" in result.stdout
    assert result.stdout.count("last_hidden_state: shape") == 2


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["embed", "--model", "./missing-folder", "x"], "does not exist"),
        (["embed", "--max-length", "100000", "x"], "max_length must be between 3 and 512"),
        (["embed", "--saved-model", ".", "x"], "neither a SavedModel folder"),
    ],
)
def test_user_mistakes_are_one_line(args, pattern):
    assert_one_line_error(tfbert(*args), pattern)


def test_bad_argument_value_is_rejected_by_argparse():
    result = tfbert("export", "--version", "zero")
    assert result.returncode == 2 and "expected a positive integer" in result.stderr and "Traceback" not in result.stderr
