"""Model cards (tfbert.checkpoints.model_card): generated with every export (assets.extra/README.md) and
every Hugging Face-layout save (README.md), read back with huggingface_hub as the hub reads them."""

import pathlib
import re

import pytest
from huggingface_hub import ModelCard

from conftest import TINY_BERT, run_python
from test_example_signatures import method_names
from test_serving import signature_defs
from tfbert.checkpoints.model_card import hub_id

CARD = pathlib.Path("assets.extra") / "README.md"


def signature_table(text):
    """{signature: (method, [input names], [output names])} from a card's Signatures table."""
    rows = {}
    for line in text.split("## Signatures", 1)[1].split("\n## ", 1)[0].splitlines():
        match = re.match(r"\| `([^`]+)` \| (\S+) \| (.*) \| (.*) \|$", line)
        if match:
            rows[match[1]] = (match[2], re.findall(r"`([^`]+)`", match[3]), re.findall(r"`([^`]+)`", match[4]))
    return rows


def test_export_card_lists_every_signature_as_saved(tiny_export):
    card = ModelCard.load(pathlib.Path(tiny_export) / CARD)
    assert card.data.library_name == "tfbert" and card.data.pipeline_tag == "feature-extraction"
    assert card.data.base_model is None  # a local folder is no hub id; the body names it
    rows = signature_table(card.text)
    saved = {name: value for name, value in signature_defs(tiny_export).items() if not name.startswith("__")}
    methods = method_names(tiny_export)
    assert sorted(rows) == sorted(saved) and "serve_examples" in rows
    for name, (inputs, outputs) in saved.items():
        method, card_inputs, card_outputs = rows[name]
        assert (method, sorted(card_inputs), sorted(card_outputs)) == (methods[name], sorted(inputs), sorted(outputs))
    assert f"| tokenizer max_length | {TINY_BERT['max_position_embeddings']} |" in card.text
    assert f"| layers | {TINY_BERT['num_hidden_layers']} |" in card.text
    assert "tfbert.export_saved_model(" in card.text  # made from Python


def test_checkpoint_names_map_to_hub_ids():
    assert hub_id("minilm-l6-uncased") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_id("bert-base-uncased") == "google-bert/bert-base-uncased"
    assert hub_id("google-bert/bert-base-cased") == "google-bert/bert-base-cased"
    assert hub_id("/tmp/my-checkpoint") is None and hub_id("./a/b") is None and hub_id(None) is None


def test_finetune_cards_state_data_metrics_and_labels(tmp_path, tiny_checkpoint):
    import tfbert

    rows = [("animals", f"the {word} runs in the field") for word in ("dog", "cat", "horse")]
    rows += [("software", f"a {word} library for python") for word in ("parser", "compiler", "network")]
    for split, chosen in (("train", rows * 2), ("dev", rows)):
        (tmp_path / f"{split}.csv").write_text("label,text\n" + "".join(f"{label},{text}\n" for label, text in chosen),
                                               encoding="utf-8")
    result = tfbert.finetune(str(tmp_path / "train.csv"), str(tmp_path / "dev.csv"), model=str(tiny_checkpoint),
                             out_dir=str(tmp_path / "out"), epochs=2, batch_size=4, max_length=16, pooling="pooled",
                             patience=None, name="topics", verbose=0)
    best = next(entry for entry in result.history if entry["epoch"] == result.best_epoch)
    for path in (result.export_path / CARD, result.transformers_path / "README.md"):
        card = ModelCard.load(path)
        assert card.data.library_name == "tfbert" and card.data.pipeline_tag == "text-classification", path
        assert card.data.model_name == "topics"
        metrics = {r.metric_name: r.metric_value for r in card.data.eval_results}
        assert metrics == {name: pytest.approx(value, abs=1e-6) for name, value in best.items() if name.startswith("val_")}
        assert f"| train | {tmp_path / 'train.csv'} |" in card.text and "| train examples | 12 |" in card.text
        assert "| dev examples | 6 |" in card.text
        assert f"| best epoch | {result.best_epoch} of 2 run, by val_accuracy |" in card.text
        assert "`animals`, `software`" in card.text and f"from `{tiny_checkpoint.name}`" in card.text
        assert "tfbert.finetune(train=" in card.text
    assert "## Signatures" in (result.export_path / CARD).read_text()
    assert "## Signatures" not in (result.transformers_path / "README.md").read_text()
    # The card sits beside the weights without disturbing transformers (PyTorch, in a fresh process).
    loaded = run_python("import sys; from transformers import BertForSequenceClassification as B; "
                        "print(B.from_pretrained(sys.argv[1]).config.id2label[1])", result.transformers_path)
    assert loaded.returncode == 0 and loaded.stdout.split() == ["software"], loaded.stderr[-2000:]


# The pretraining card is checked on the run of tests/test_tensorboard.py's pretraining test.
