"""BertTokenizerLayer against transformers' Python BertTokenizer, computed live."""

import json
import random
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text
import tf_keras

from conftest import SEED_IDS, SEED_SENTENCE, read_jsonl, shared_file, valid_ids
from tfbert.errors import TfbertError
from tfbert.text.tokenizer import BertTokenizerLayer


def reference_ids(tokenizer, texts, pairs=None, max_length=512):
    if pairs is None:
        return [tokenizer(t, truncation="longest_first", max_length=max_length)["input_ids"] for t in texts]
    return [tokenizer(t, p, truncation="longest_first", max_length=max_length)["input_ids"] for t, p in zip(texts, pairs)]


def assert_same_ids(ours, theirs, texts):
    mismatches = [i for i in range(len(texts)) if ours[i] != theirs[i]]
    assert not mismatches, (
        f"{len(mismatches)}/{len(texts)} differ; first: {texts[mismatches[0]]!r}\n"
        f"ours {ours[mismatches[0]]}\nref  {theirs[mismatches[0]]}"
    )


@pytest.fixture(scope="module")
def layers(vocab_file):
    cache = {}

    def get(**kwargs):
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            cache[key] = BertTokenizerLayer(vocab_file, **kwargs)
        return cache[key]

    return get


def test_seed_sentence(layers, reference_tokenizer):
    out = layers()(tf.constant([SEED_SENTENCE]))
    assert valid_ids(out) == [SEED_IDS] == [reference_tokenizer()(SEED_SENTENCE)["input_ids"]]
    assert out["input_ids"].dtype == tf.int32
    assert out["token_type_ids"].numpy().tolist() == [[0] * 12]


@pytest.mark.parametrize("max_length", [8, 64, 512])
@pytest.mark.parametrize("do_lower_case", [True, False])
def test_corpus_parity(layers, reference_tokenizer, do_lower_case, max_length):
    """Every case of shared/data/tokenizer-cases.jsonl, single texts and pairs."""
    cases = read_jsonl(shared_file("data", "tokenizer-cases.jsonl"))
    layer, ref = layers(do_lower_case=do_lower_case, max_length=max_length), reference_tokenizer(do_lower_case)
    texts = [c["text"] for c in cases]
    assert_same_ids(valid_ids(layer(tf.constant(texts))), reference_ids(ref, texts, max_length=max_length), texts)

    pair_cases = [c for c in cases if c["pair"] is not None]
    firsts, seconds = [c["text"] for c in pair_cases], [c["pair"] for c in pair_cases]
    out = layer((tf.constant(firsts), tf.constant(seconds)))
    ref_pairs = [ref(a, b, truncation="longest_first", max_length=max_length) for a, b in zip(firsts, seconds)]
    assert_same_ids(valid_ids(out), [r["input_ids"] for r in ref_pairs], firsts)
    ours_types = [row[m == 1].tolist() for row, m in zip(out["token_type_ids"].numpy(), out["attention_mask"].numpy())]
    assert ours_types == [r["token_type_ids"] for r in ref_pairs]


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_generated_corpus_parity(tmp_path, layers, reference_tokenizer, do_lower_case):
    """A corpus this repo never saw, from the shared generator with another seed, as singles and pairs."""
    out_file = tmp_path / "cases.jsonl"
    subprocess.run([sys.executable, str(shared_file("tools", "make_tokenizer_corpus.py")), "2026", "1500", str(out_file),
                    str(shared_file("data", "debian-sections", "train.csv"))], check=True)
    texts = [c["text"] for c in read_jsonl(out_file)]
    layer, ref = layers(do_lower_case=do_lower_case, max_length=64), reference_tokenizer(do_lower_case)
    assert_same_ids(valid_ids(layer(tf.constant(texts))), reference_ids(ref, texts, max_length=64), texts)
    seconds = texts[1:] + texts[:1]
    out = layer((tf.constant(texts), tf.constant(seconds)))
    assert_same_ids(valid_ids(out), reference_ids(ref, texts, seconds, max_length=64), texts)


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_every_bmp_code_point(layers, reference_tokenizer, do_lower_case):
    """Each code point of the BMP (and every 17th beyond), alone and between letters."""
    code_points = [c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF] + list(range(0x10000, 0x110000, 17))
    layer, ref = layers(do_lower_case=do_lower_case), reference_tokenizer(do_lower_case)
    for template in ("{}", "A{}b"):
        texts = [template.format(chr(c)) for c in code_points]
        assert_same_ids(valid_ids(layer(tf.constant(texts))), reference_ids(ref, texts), texts)


@pytest.mark.parametrize("do_lower_case,strip_accents", [(True, None), (True, False), (False, None), (False, True)])
def test_combining_sequences(layers, reference_tokenizer, do_lower_case, strip_accents):
    """Sequence-level Unicode effects: NFC composition, mark reordering, Hangul jamo, İ, Σ."""
    rng = random.Random(7)
    marks = [chr(c) for c in range(0x300, 0x110000) if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me")]
    reordering = [m for m in marks if unicodedata.combining(m)]
    bases = list("aeoAEOnNcCsSΣσΑΩωιΙİIıKkß") + [chr(c) for c in range(0x1100, 0x1176)] + ["\u0915", "\u0b47", "か", "ﾊ"]
    texts = []
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append(rng.choice(bases))
            parts += [rng.choice(reordering if rng.random() < 0.6 else marks) for _ in range(rng.randint(0, 4))]
            if rng.random() < 0.2:
                parts.append(rng.choice([" ", ".", "'", "\u200b", "\u00ad", "[SEP]", "ς"]))
        texts.append("".join(parts))
    layer = layers(do_lower_case=do_lower_case, strip_accents=strip_accents)
    ref = reference_tokenizer(do_lower_case, strip_accents)
    assert_same_ids(valid_ids(layer(tf.constant(texts))), reference_ids(ref, texts), texts)


def test_literal_special_tokens(layers, reference_tokenizer):
    texts = ["a [MASK] b", "x[SEP]y", "[cls] lower", "[CL\u200bS]", "[[CLS]]", "[MASK][MASK]", "[UNK]"]
    for do_lower_case in (True, False):
        ours = valid_ids(layers(do_lower_case=do_lower_case)(tf.constant(texts)))
        assert ours == reference_ids(reference_tokenizer(do_lower_case), texts)
    assert ours[0][2] == 103  # [MASK] kept whole


def test_padding_max_length(layers, reference_tokenizer):
    texts = ["short", "a somewhat longer text here", ""]
    out = layers(max_length=16, padding="max_length")(tf.constant(texts))
    ref = reference_tokenizer()(texts, truncation=True, max_length=16, padding="max_length")
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        assert out[name].numpy().tolist() == ref[name]


def test_dynamic_padding_is_longest(layers, reference_tokenizer):
    texts = ["one", "two words here", ""]
    out = layers()(tf.constant(texts))
    ref = reference_tokenizer()(texts, padding="longest")
    assert out["input_ids"].shape == (3, len(ref["input_ids"][0]))
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        assert out[name].numpy().tolist() == ref[name]


def test_empty_batch_and_empty_string(layers):
    out = layers()(tf.constant([], tf.string))
    assert out["input_ids"].shape[0] == 0 and out["input_ids"].shape.rank == 2
    assert valid_ids(layers()(tf.constant([""]))) == [[101, 102]]


def test_invalid_utf8_is_replaced_like_the_reference(layers, reference_tokenizer):
    raw = [b"caf\xc3", b"\xff\xfe bad \x80 bytes", b"ok \xed\xa0\x80 surrogate", b"[CL\xffS]", b"\xf4\x90\x80\x80x"]
    ours = valid_ids(layers()(tf.constant(raw)))
    for do_lower_case in (True, False):
        ours = valid_ids(layers(do_lower_case=do_lower_case)(tf.constant(raw)))
        texts = [r.decode("utf-8", "replace") for r in raw]
        assert ours == reference_ids(reference_tokenizer(do_lower_case), texts)


def test_one_megabyte_strings(layers, reference_tokenizer):
    words = " ".join(random.Random(1).choice(["alpha", "Beta", "γάμμα", "δ.", "x" * 150]) for _ in range(180_000))
    one_word = "y" * 1_000_000
    texts = [words[:1_000_000], one_word, "\x00" * 1_000_000]
    ours = valid_ids(layers()(tf.constant(texts)))
    assert ours == reference_ids(reference_tokenizer(), texts)
    assert [len(x) for x in ours] == [512, 3, 2]


def test_graph_equals_eager(layers):
    layer = layers(max_length=32)
    texts = tf.constant(["Graph mode, too.", "", "Ünïcödé ΣΑΣ"])
    pairs = tf.constant(["second", "x", "[SEP]"])
    graph = tf.function(lambda a, b: (layer(a), layer((a, b))))
    eager_single, eager_pair = layer(texts), layer((texts, pairs))
    graph_single, graph_pair = graph(texts, pairs)
    for eager, graph_out in ((eager_single, graph_single), (eager_pair, graph_pair)):
        for name in eager:
            np.testing.assert_array_equal(eager[name].numpy(), graph_out[name].numpy())


def _graph_nodes(function, *specs):
    """The nodes of a traced function, its nested functions' (tf.cond branches) included."""
    graph = tf.function(function).get_concrete_function(*specs).graph.as_graph_def()
    return [*graph.node, *(node for f in graph.library.function for node in f.node_def)]


def _graph_size(function, *specs):
    return len(_graph_nodes(function, *specs))


def test_a_pair_is_tokenized_as_one_batch(layers):
    """Both texts of a pair go through the segmenter together: a pair's graph (what an export traces
    and a server runs) is not twice a single text's, with or without offsets."""
    layer = layers()
    text = tf.TensorSpec([None], tf.string)
    single, pair = _graph_size(lambda a: layer(a), text), _graph_size(lambda a, b: layer((a, b)), text, text)
    assert pair < 1.5 * single, (single, pair)
    single = _graph_size(lambda a: layer.tokenize_with_offsets(a), text)
    pair = _graph_size(lambda a, b: layer.tokenize_with_offsets((a, b)), text, text)
    assert pair < 1.5 * single, (single, pair)


def _asserts(function, *specs):
    return sum(node.op == "Assert" for node in _graph_nodes(function, *specs))


def test_the_tokenizer_graph_does_not_validate_its_own_ragged_tensors(layers):
    """Ragged tensors the tokenizer builds skip TensorFlow's validation (`tfbert.text.ragged`): each
    check is a conditional of two functions to trace, save and load with every export. What is left:
    tensorflow-text's `regex_split` (9) and the check that a pair's two inputs have one batch size."""
    layer = layers()
    text = tf.TensorSpec([None], tf.string)
    counts = [_asserts(lambda a: layer(a), text), _asserts(lambda a, b: layer((a, b)), text, text),
              _asserts(lambda a, b: layer.tokenize_with_offsets((a, b)), text, text),
              _asserts(lambda a, b: layer.tokenize_windows(a, b, 8, 8, 4), text, text)]
    assert max(counts) <= 12, counts


def _random_ragged(rng, rows, ragged_rank=1, dtype=tf.int32, inner=()):
    """A ragged tensor [rows, (n), ...] with empty rows among its rows, random values."""
    if ragged_rank == 0:
        return tf.constant(rng.integers(0, 1000, size=(rows, *inner)), dtype)
    lengths = rng.integers(0, 4, size=rows) * rng.integers(0, 2, size=rows)
    values = _random_ragged(rng, int(lengths.sum()), ragged_rank - 1, dtype, inner)
    return tf.RaggedTensor.from_row_lengths(values, tf.constant(lengths, tf.int64))


def test_ragged_helpers_equal_tensorflows_ops():
    """`tfbert.text.ragged`'s unvalidated helpers and `packing.combine_segments` give what TensorFlow's
    and tensorflow-text's validated ops give, empty rows and empty batches included."""
    from tfbert.text.packing import combine_segments
    from tfbert.text.ragged import concat_rows, expand_values, join_rows

    rng = np.random.default_rng(0)
    for rows in (0, 1, 7):
        a, b = _random_ragged(rng, rows), _random_ragged(rng, rows)
        for segments in ([a], [a, b]):
            ours, theirs = combine_segments(segments, 101, 102), tf_text.combine_segments(segments, 101, 102)
            for x, y in zip(ours, theirs):
                assert x.to_list() == y.to_list() and x.dtype == y.dtype
        spans = _random_ragged(rng, rows, inner=(2,))
        assert concat_rows([a, b, a]).to_list() == tf.concat([a, b, a], axis=1).to_list()
        assert concat_rows([spans, spans]).to_list() == tf.concat([spans, spans], axis=1).to_list()
        groups = _random_ragged(rng, rows, ragged_rank=2)
        parts = _random_ragged(rng, int(groups.values.nrows()))
        assert join_rows(groups, parts).to_list() == groups.with_values(parts).merge_dims(1, 2).to_list()
        for ragged in (a, groups):
            mapped = _random_ragged(rng, int(tf.size(ragged.flat_values)))
            assert expand_values(ragged, mapped).to_list() == ragged.with_flat_values(mapped).merge_dims(-2, -1).to_list()


def test_inside_dataset_map(layers, reference_tokenizer):
    texts = ["first text", "the second one is longer", "third"]
    layer = layers(max_length=16, padding="max_length")
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(layer)
    ids = [row for batch in dataset for row in valid_ids(batch)]
    assert ids == reference_ids(reference_tokenizer(), texts)


def test_input_shapes(layers):
    layer = layers()
    expected = valid_ids(layer(tf.constant(["a b"])))
    assert valid_ids(layer(tf.constant([["a b"]]))) == expected
    assert valid_ids(layer(tf.constant("a b"))) == expected
    with pytest.raises(TfbertError, match="string tensor"):
        layer(tf.constant([1, 2]))


def test_config_round_trip(layers):
    layer = layers(max_length=128, do_lower_case=False)
    config = layer.get_config()
    assert isinstance(config["vocabulary"], str)  # a path: the vocabulary is an asset, not config
    clone = BertTokenizerLayer.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    registered = tf_keras.utils.deserialize_keras_object(tf_keras.utils.serialize_keras_object(layer))
    assert isinstance(registered, BertTokenizerLayer)
    text = tf.constant(["Round Trip"])
    assert valid_ids(clone(text)) == valid_ids(layer(text))


def test_vocabulary_is_a_tracked_asset(tmp_path, layers):
    layer = layers()
    module = tf.Module()
    module.tokenizer = layer
    module.tokenize = tf.function(lambda text: layer(text), input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "m"))
    assert (tmp_path / "m" / "assets" / "vocab.txt").read_bytes() == open(layer.vocabulary, "rb").read()
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    assert valid_ids(loaded.tokenize(tf.constant([SEED_SENTENCE]))) == [SEED_IDS]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"max_length": 2}, "max_length must be an integer of at least 3"),
        ({"padding": "left"}, "padding must be one of"),
        ({"unk_token": "<unk>"}, "not in the vocabulary"),
        ({"max_input_chars_per_word": 0}, "max_input_chars_per_word"),
        ({"mask_token": "[MA\ufffdSK]"}, "must not contain NUL or U\\+FFFD"),
    ],
)
def test_bad_arguments(vocab_file, kwargs, message):
    with pytest.raises(TfbertError, match=message):
        BertTokenizerLayer(vocab_file, **kwargs)


def test_bad_vocabularies(tmp_path):
    duplicate = tmp_path / "dup.txt"
    duplicate.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\na\n")
    with pytest.raises(TfbertError, match=r"lists 'a' twice \(lines 6 and 7\)"):
        BertTokenizerLayer(str(duplicate))
    windows = tmp_path / "crlf.txt"
    windows.write_bytes(b"[PAD]\r\n[UNK]\r\n")
    with pytest.raises(TfbertError, match="carriage returns"):
        BertTokenizerLayer(str(windows))
    with pytest.raises(TfbertError, match="cannot read the vocabulary"):
        BertTokenizerLayer(str(tmp_path / "missing.txt"))


# Where the libraries are wrong: the failing cases that made us compose our own steps.


def test_regex_split_stops_at_nul():
    """tensorflow-text's regex_split drops everything after a NUL byte; tfbert maps NUL to U+FFFD first."""
    pieces = tf_text.regex_split(tf.constant(["ab \x00 cd"]), r"\[SEP\]", r"\[SEP\]")
    assert pieces.to_list() == [[b"ab "]]


def test_tensorflow_text_bert_tokenizer_diverges(vocab_file, reference_tokenizer):
    """tensorflow-text's BertTokenizer(lower_case=True) case-folds with NFKC (ﬁ -> fi, full-width -> ASCII)
    and splits on control characters, where the reference lower-cases, strips accents and deletes them."""
    texts = ["\ufb01ne", "\uff21\uff22\uff23", "a\x05b"]
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                      tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), -1)
    theirs = tf_text.BertTokenizer(table, lower_case=True).tokenize(tf.constant(texts)).merge_dims(1, 2).to_list()
    reference = [reference_tokenizer()(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert all(a != b for a, b in zip(theirs, reference))


def test_character_tables_cache(tmp_path, monkeypatch):
    """The tables are kept in the cache; a damaged file is recomputed, never trusted."""
    from tfbert.text import chartables

    monkeypatch.setenv("TFBERT_CACHE", str(tmp_path))
    configuration = (False, None, True)
    fresh = chartables._tabulate(*configuration)
    path = chartables._disk_cache_path(configuration)
    chartables._store_tables(fresh, path)
    loaded = chartables._load_tables(path)
    for table in chartables._TABLE_NAMES:
        for name in chartables._ARRAY_NAMES:
            np.testing.assert_array_equal(getattr(getattr(loaded, table), name), getattr(getattr(fresh, table), name))
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    assert chartables._load_tables(path) is None
