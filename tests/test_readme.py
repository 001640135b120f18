"""The README and the guides in docs/ are executable: their Python examples run, their commands parse, their
printed outputs are what we print.

Examples that need a running TF Serving (the gRPC client, `docker run`) or a cloud runner are parsed,
not run; the REST examples are checked against the export in tests/test_serving.py.
"""

import ast
import json
import os
import re
import shlex

import pytest

from conftest import REPO, SEED_SENTENCE, run_python, shared_file
from test_cli import tfbert

# In reading order: the Python examples run in one process, in this order.
DOCS = ["README.md", "docs/serving.md", "docs/tasks.md", "docs/question-answering.md", "docs/token-classification.md",
        "docs/fill-mask.md", "docs/text-classification.md", "docs/embeddings.md", "docs/finetuning.md", "docs/pretraining.md",
        "docs/surgery.md", "docs/cli.md", "docs/design.md", "benchmarks/README.md"]
TEXTS = {name: (REPO / name).read_text(encoding="utf-8") for name in DOCS}
README = TEXTS["README.md"]
NEEDS_A_SERVER = ("import grpc",)


def code_blocks(*languages, docs=DOCS):
    """[(where, language, text)] of the docs' fenced blocks in these languages ("" for plain); where is
    "file:line" of the opening fence."""
    blocks = []
    for name in docs:
        text = TEXTS[name]
        for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
            if match.group(1) in languages:
                blocks.append((f"{name}:{text[:match.start()].count(chr(10)) + 1}", match.group(1), match.group(2)))
    return blocks


def block_after(heading):
    """The first fenced block after a line that contains `heading`, in the first doc that has it."""
    name = next(name for name in DOCS if heading in TEXTS[name])
    text = TEXTS[name]
    match = re.compile(r"^```\w*\n(.*?)^```", flags=re.S | re.M).search(text, text.index(heading))
    return match.group(1)


def test_docs_link_to_files_that_exist():
    broken = []
    for name, text in TEXTS.items():
        prose = re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", prose):
            if not ((REPO / name).parent / target).exists():
                broken.append(f"{name}: {target}")
    assert not broken, broken


def test_every_guide_is_listed_in_the_readme():
    guides = {f"docs/{path.name}" for path in (REPO / "docs").glob("*.md")}
    assert guides <= set(DOCS) and all(f"]({guide})" in README for guide in guides)


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory, default_export, vocab_file):
    """A working folder as the README's reader has it after `tfbert export`: saved_models/minilm-l6-uncased/1."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "saved_models" / "minilm-l6-uncased").mkdir(parents=True)
    # The version folder only: other tests may add versions beside it in the shared export's folder.
    os.symlink(default_export[1], folder / "saved_models" / "minilm-l6-uncased" / "1")
    # docs/tasks.md exports a question-answering checkpoint from this folder.
    from transformers import BertForQuestionAnswering

    from test_tasks import _make_checkpoint

    _make_checkpoint(folder / "my-squad-bert", BertForQuestionAnswering, vocab_file, 1, {"qa_outputs.weight": 1.0})
    return folder


# Python examples ---------------------------------------------------------------------------------------------

PRELUDE = """
import csv, json
import numpy as np
import tensorflow as tf

# The names the examples leave to the reader: a few labelled Debian descriptions.
with open({train!r}, encoding="utf-8") as _f:
    _rows = [r for r in csv.DictReader(_f) if r["label"] in ("games", "database")][:24]
texts = [r["text"] for r in _rows]
labels = label_ids = [("games", "database").index(r["label"]) for r in _rows]
dev = tf.data.Dataset.from_tensor_slices((texts[:8], labels[:8])).batch(8)
_claims = []


def _claim(value, expected, source):
    if isinstance(expected, str):
        actual = str(value)
    elif hasattr(value, "as_list"):  # a TensorShape
        actual = tuple(value.as_list())
    else:
        actual = np.asarray(value).tolist()
    assert actual == expected, f"{{source}}: the comment says {{expected!r}}, the code gives {{actual!r}}"
    _claims.append(source)
"""


def _claimed_value(comment):
    """The value a comment states (`# (1, 384)`, `# [[101, 102]]: ...`, `# -> path`), or None for prose."""
    comment = comment.strip()
    if comment.startswith("->"):
        return comment[2:].split()[0]
    for candidate in (comment, comment.split(":")[0]):
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError):
            continue
    return None


def with_claims_checked(code, where):
    """The block with every `expression  # value` (or the value on the next comment line) asserted."""
    lines = code.splitlines()
    replacements = {}
    for node in ast.parse(code).body:
        if not isinstance(node, ast.Expr):
            continue
        end = node.end_lineno  # 1-based
        line = lines[end - 1]
        comment = line[node.end_col_offset:].strip()
        if not comment.startswith("#") and end < len(lines) and lines[end].lstrip().startswith("#"):
            comment = lines[end].strip()
        expected = _claimed_value(comment[1:]) if comment.startswith("#") else None
        if expected is None:
            continue
        expression = ast.get_source_segment(code, node.value)
        file, first_line = where.rsplit(":", 1)
        replacements[node.lineno] = (end, f"_claim({expression}, {expected!r}, {f'{file}:{int(first_line) + end}'!r})")
    out, skip_until = [], 0
    for number, line in enumerate(lines, 1):
        if number in replacements:
            skip_until, statement = replacements[number]
            out.append(statement)
        elif number > skip_until:
            out.append(line)
    return "\n".join(out)


def test_python_examples_run_and_their_comments_are_true(readme_folder):
    blocks = [(line, code) for line, _, code in code_blocks("python") if not any(m in code for m in NEEDS_A_SERVER)]
    assert len(blocks) >= 6
    prelude = PRELUDE.format(train=str(shared_file("data", "debian-sections", "train.csv")))
    script = prelude + "".join(f"\n# {where}\n{with_claims_checked(code, where)}\n" for where, code in blocks)
    script += "\nprint(json.dumps({'claims': _claims}))\n"
    result = run_python(script, cwd=readme_folder, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    claims = json.loads(result.stdout.strip().splitlines()[-1])["claims"]
    print(f"Python examples of the docs: {len(blocks)} blocks ran, {len(claims)} stated values checked")
    assert len(claims) >= 4  # the shapes, the export path and the added token's ids
    assert (readme_folder / "saved_models" / "my-model" / "1" / "saved_model.pb").is_file()
    assert (readme_folder / "my-classifier" / "model.weights.h5").is_file()


def test_claims_are_found():
    """The comment parser behind the test above finds values and leaves prose alone."""
    code = 'x.shape   # (1, 384)\nf(y)\n# [[101, 102]]: one token\nz  # pairs: token_type_ids 0 then 1\nsave(m)  # -> a/1\n'
    checked = with_claims_checked(code, "README.md:10")
    assert "_claim(x.shape, (1, 384), 'README.md:11')" in checked and "_claim(f(y), [[101, 102]], 'README.md:12')" in checked
    assert "\nz  # pairs" in checked and "_claim(save(m), 'a/1', 'README.md:15')" in checked


# Commands ------------------------------------------------------------------------------------------------------

def command_lines():
    """Every tfbert command in the README's bash blocks, continuation lines joined, as argv lists."""
    commands = []
    for line, _, code in code_blocks("bash"):
        for command in code.replace("\\\n", " ").splitlines():
            for part in command.split("&&"):
                words = shlex.split(part, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # environment assignments
                    words = words[1:]
                if words[:1] == ["tfbert"]:
                    commands.append((line, "tfbert", words[1:]))
                elif words[:3] == ["python", "-m", "tfbert"]:
                    commands.append((line, "tfbert", words[3:]))
                elif words[:3] == ["python", "-m", "tfbert.beam"] and "..." not in words:
                    commands.append((line, "beam", words[3:]))
    return commands


def test_every_readme_command_parses():
    from tfbert import cli
    from tfbert.jobs import beam

    commands = command_lines()
    assert {kind for _, kind, _ in commands} == {"tfbert", "beam"}
    names = {args[0] for _, kind, args in commands if kind == "tfbert"}
    assert names == {"export", "embed", "check-serving", "embed-corpus", "finetune", "pretrain", "predict"}, names
    for line, kind, args in commands:
        try:
            if kind == "tfbert":
                cli.build_parser().parse_args(args)
            else:
                beam.build_parser().parse_known_args(args)
        except SystemExit:
            pytest.fail(f"{line}: {kind} {' '.join(args)} does not parse")


def subcommand_options():
    from tfbert import cli
    from tfbert.jobs import beam

    parser = cli.build_parser()
    (subparsers,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    options = {name: {o for a in sub._actions for o in a.option_strings} - {"-h", "--help"}
               for name, sub in subparsers.choices.items()}
    options["tfbert.beam"] = {o for a in beam.build_parser()._actions for o in a.option_strings} - {"-h", "--help"}
    return options


def test_command_synopsis_lists_every_option():
    """The command-line synopsis names each command's options, no more and no fewer."""
    synopsis = block_after("# Command line")
    entries = re.split(r"\n(?=tfbert |python -m tfbert)", synopsis.strip())
    options = subcommand_options()
    seen = set()
    for entry in entries:
        command = "tfbert.beam" if entry.startswith("python -m tfbert.beam") else entry.split()[1]
        seen.add(command)
        listed = set(re.findall(r"--[a-z][a-z-]*", entry))
        assert listed == options[command], (command, sorted(listed - options[command]), sorted(options[command] - listed))
    assert seen == set(options)


# Printed outputs ---------------------------------------------------------------------------------------------

def assert_lines_in_order(expected_block, output):
    """Every line of the README's block but `...` appears in the output, in the same order."""
    lines = [line.rstrip() for line in output.splitlines()]
    position = 0
    for expected in expected_block.splitlines():
        if expected.strip() in ("...", ""):
            continue
        try:
            position = lines.index(expected.rstrip(), position) + 1
        except ValueError:
            pytest.fail(f"README line {expected!r} is not in the output:\n{output[-3000:]}")


def test_setup_command_output(readme_folder):
    setup = code_blocks("bash", docs=["README.md"])[0][2]
    embed = setup.split("&&")[-1].split()
    assert embed[:3] == ["tfbert", "embed", "--saved-model"] and SEED_SENTENCE in setup
    result = tfbert("embed", "--saved-model", "saved_models/minilm-l6-uncased", SEED_SENTENCE, cwd=readme_folder)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_lines_in_order(block_after("Expected output of the first command"), result.stdout)


def test_check_serving_output(readme_folder):
    block = block_after("## `tfbert check-serving`")
    command, expected = block.split("\n", 1)
    assert command == "$ tfbert check-serving saved_models/minilm-l6-uncased"
    result = tfbert(*shlex.split(command)[2:], cwd=readme_folder)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_lines_in_order(expected, result.stdout)


def test_models_config_example(tmp_path, default_export):
    from tfbert.serving.models_config import update_models_config

    (tmp_path / "saved_models" / "minilm-l6-uncased").mkdir(parents=True)
    os.symlink(default_export[1], tmp_path / "saved_models" / "minilm-l6-uncased" / "1")
    path = update_models_config(tmp_path / "saved_models")
    assert path.read_text().strip() == block_after("`saved_models/models.config` after").strip()
