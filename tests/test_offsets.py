"""Character offsets (`BertTokenizerLayer.tokenize_with_offsets`) against transformers' `BertTokenizerFast`.

The fast tokenizer departs from the reference (`BertTokenizer`) on some texts: where both give the
same ids, tfbert's offsets must equal the fast tokenizer's `offset_mapping`; everywhere, each token's
offsets must cover the characters it came from (tfbert.text.offsets states the rules).
"""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from conftest import debian_texts, shared_file, run_python

MAX_LENGTH = 512


@pytest.fixture(scope="module")
def layer(default_checkpoint):
    return default_checkpoint.build_tokenizer(MAX_LENGTH, "longest")


@pytest.fixture(scope="module")
def fast_tokenizer(default_checkpoint):
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(default_checkpoint.folder))


def cases():
    with open(shared_file("data", "tokenizer-cases.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def ours(layer, texts, pairs=None):
    """[(ids, offsets)] per row, without padding."""
    outputs = layer.tokenize_with_offsets(tf.constant(texts)) if pairs is None else layer.tokenize_with_offsets(
        (tf.constant(texts), tf.constant(pairs)))
    plain = layer(tf.constant(texts)) if pairs is None else layer((tf.constant(texts), tf.constant(pairs)))
    for name in ("input_ids", "token_type_ids", "attention_mask"):  # offsets change nothing else
        np.testing.assert_array_equal(outputs[name].numpy(), plain[name].numpy())
    rows = []
    for i, length in enumerate(outputs["attention_mask"].numpy().sum(1)):
        rows.append((outputs["input_ids"][i, :length].numpy().tolist(),
                     [tuple(pair) for pair in outputs["offsets"][i, :length].numpy().tolist()]))
    return rows


def compare_with_fast(layer, fast_tokenizer, texts, pairs=None):
    """(texts where the ids agree, of them those whose offsets differ)."""
    agree, differ = 0, []
    for i, (ids, offsets) in enumerate(ours(layer, texts, pairs)):
        reference = fast_tokenizer(texts[i], pairs[i] if pairs else None, truncation="longest_first",
                                   max_length=MAX_LENGTH, return_offsets_mapping=True)
        if reference["input_ids"] != ids:
            continue
        agree += 1
        if [tuple(pair) for pair in reference["offset_mapping"]] != offsets:
            differ.append(texts[i])
    return agree, differ


def test_offsets_equal_the_fast_tokenizer_where_ids_agree(layer, fast_tokenizer):
    texts = cases()
    texts = texts + debian_texts("dev", 200)
    agree, differ = compare_with_fast(layer, fast_tokenizer, texts)
    print(f"offsets: {agree} of {len(texts)} texts where BertTokenizerFast's ids equal tfbert's; "
          f"{len(differ)} with other offsets")
    assert agree >= 0.75 * len(texts)  # the comparison covers most texts
    assert differ == [], [t[:80] for t in differ[:5]]


def test_pair_offsets_are_within_each_text(layer, fast_tokenizer):
    with open(shared_file("data", "tokenizer-cases.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    pairs = [(row["text"], row["pair"]) for row in rows if row["pair"] is not None][:300]
    agree, differ = compare_with_fast(layer, fast_tokenizer, [a for a, _ in pairs], [b for _, b in pairs])
    print(f"pair offsets: {agree} of {len(pairs)} pairs with equal ids; {len(differ)} with other offsets")
    assert agree >= 0.5 * len(pairs) and differ == []


def test_offsets_cover_the_characters_each_token_came_from(layer, reference_tokenizer):
    """On every text, where the fast tokenizer agrees or not: starts and ends never go back, and the
    characters tokens cover, run through the reference's `BasicTokenizer`, give those tokens' text (a
    whole word, for [UNK]). Tokens that share a character (the pieces of a Hangul syllable that
    accent stripping decomposes) are checked together."""
    texts = cases()
    reference_tokenizer = reference_tokenizer()
    basic = reference_tokenizer.basic_tokenizer
    checked = 0
    for text, (ids, offsets) in zip(texts, ours(layer, texts)):
        tokens = reference_tokenizer.convert_ids_to_tokens(ids)[1:-1]
        groups = []  # [start, end, tokens] of tokens whose spans overlap
        for token, (start, end) in zip(tokens, offsets[1:-1]):
            assert 0 <= start < end <= len(text), (text[:60], token, (start, end))
            if groups and start < groups[-1][1]:
                assert start >= groups[-1][0] and end >= groups[-1][1], (text[:60], token, (start, end))
                groups[-1][1] = end
                groups[-1][2].append(token)
            else:
                assert not groups or start >= groups[-1][1]
                groups.append([start, end, [token]])
        for start, end, group in groups:
            covered = text[start:end]
            if group == [covered] and covered in reference_tokenizer.all_special_tokens:
                continue  # a special token written in the text
            words = basic.tokenize(covered)
            if group == [reference_tokenizer.unk_token]:
                assert len(words) == 1, (text[:60], covered)
            else:
                assert "".join(words) == "".join(t.removeprefix("##") for t in group), (text[:60], group, covered)
            checked += len(group)
    print(f"{checked} token offsets checked against the characters they cover")
    assert checked > 10_000


def test_special_tokens_and_padding_have_zero_offsets(layer):
    outputs = layer.tokenize_with_offsets((tf.constant(["Hello world!", "a"]), tf.constant(["Bye.", "b c d e"])))
    offsets, ids, mask = outputs["offsets"].numpy(), outputs["input_ids"].numpy(), outputs["attention_mask"].numpy()
    special = np.isin(ids, [layer.cls_id, layer.sep_id]) | (mask == 0)
    assert (offsets[special] == 0).all() and (offsets[~special][:, 1] > offsets[~special][:, 0]).all()
    assert offsets.dtype == np.int32 and offsets.shape == ids.shape + (2,)
    # The second text's tokens count from the start of the second text.
    assert [tuple(o) for o in offsets[0][ids[0] != 0]][-3:-1] == [(0, 3), (3, 4)]


def test_invalid_utf8_offsets_count_the_repaired_text(layer, fast_tokenizer):
    """Invalid bytes become U+FFFD (which the reference deletes); offsets count the code points of the
    text so repaired, as Python's `bytes.decode("utf-8", errors="replace")` repairs it."""
    raw = [b"caf\xe9 ol\xc3\xa9 ok", b"\xff\xfeab cd", b"x \xe2\x82 y\xf0\x9f"]
    for data, (ids, offsets) in zip(raw, ours(layer, raw)):
        repaired = data.decode("utf-8", errors="replace")
        reference = fast_tokenizer(repaired, return_offsets_mapping=True)
        assert reference["input_ids"] == ids, data
        assert [tuple(pair) for pair in reference["offset_mapping"]] == offsets, data


def test_find_source_offsets_fails_on_a_batch_with_an_empty_string():
    """Why tfbert.text.offsets.compose appends each row's end to the offsets it maps: tensorflow-text's
    `find_source_offsets` rejects a batch in which a row has no offsets."""
    normalized, offsets_map = tf_text.normalize_utf8_with_offsets_map(tf.constant(["ab", "", "c"]), "NFC")
    _, starts = tf.strings.unicode_decode_with_offsets(normalized, "UTF-8")
    with pytest.raises(tf.errors.InvalidArgumentError, match="did not match the offset map dimension"):
        tf_text.find_source_offsets(offsets_map, starts)


FIND_SOURCE_OFFSETS_ON_NO_ROWS = """
import tensorflow as tf
import tensorflow_text as tf_text
normalized, offsets_map = tf_text.normalize_utf8_with_offsets_map(tf.constant([], tf.string), "NFC")
_, starts = tf.strings.unicode_decode_with_offsets(normalized, "UTF-8")
tf_text.find_source_offsets(offsets_map, starts)
print("survived")
"""


def test_find_source_offsets_crashes_on_a_batch_of_no_rows(layer):
    """Why tfbert.text.offsets.compose adds a row before normalizing: tensorflow-text's
    `find_source_offsets` kills the process (SIGSEGV) on a batch of no rows, which a batch of empty
    texts gives it. The layer answers such batches."""
    result = run_python(FIND_SOURCE_OFFSETS_ON_NO_ROWS)
    assert result.returncode != 0 and "survived" not in result.stdout
    for texts in ([""], ["", "   "], []):
        outputs = layer.tokenize_with_offsets(tf.constant(texts, tf.string))
        assert outputs["input_ids"].numpy().tolist() == [[101, 102]] * len(texts)
        assert outputs["offsets"].numpy().tolist() == [[[0, 0], [0, 0]]] * len(texts)


@pytest.mark.parametrize("max_length,stride", [(64, 0), (64, 20), (40, 8)])
def test_windows_equal_the_fast_tokenizers_overflowing_tokens(default_checkpoint, fast_tokenizer, max_length, stride):
    """`tokenize_windows` against `tokenizer(question, context, truncation="only_second", max_length=...,
    stride=..., return_overflowing_tokens=True, return_offsets_mapping=True)`: every window's ids, token
    types and offsets, and which pair it belongs to. Questions stay under max_question_length here (the
    fast tokenizer has no such cut)."""
    layer = default_checkpoint.build_tokenizer(max_length, "longest")
    contexts = debian_texts("dev", 40) + ["", "one"]
    questions = ["what is it?", "", "Which package handles the sound output of ALSA?"] * 14
    windows = layer.tokenize_windows(tf.constant(questions), tf.constant(contexts), stride, 16, 1000)
    ids, offsets, types, mask = (windows[k].numpy() for k in ("input_ids", "offsets", "token_type_ids", "attention_mask"))
    expected = fast_tokenizer(questions, contexts, truncation="only_second", max_length=max_length, stride=stride,
                              return_overflowing_tokens=True, return_offsets_mapping=True)
    assert windows["pair"].numpy().tolist() == expected["overflow_to_sample_mapping"]
    for w in range(len(expected["input_ids"])):
        n = int(mask[w].sum())
        assert ids[w, :n].tolist() == expected["input_ids"][w], w
        assert types[w, :n].tolist() == expected["token_type_ids"][w], w
        assert [tuple(o) for o in offsets[w, :n].tolist()] == expected["offset_mapping"][w], w
    assert len(expected["input_ids"]) > 1.5 * len(contexts)  # many contexts took several windows


def test_windows_are_capped_and_the_question_cut(layer):
    huge = " ".join(debian_texts("dev", 300))
    windows = layer.tokenize_windows(tf.constant(["word " * 100, "q"]), tf.constant(["short", huge]), 8, 10, 5)
    pair = windows["pair"].numpy().tolist()
    assert pair == [0] + [1] * 5  # the huge context: 5 windows, the rest left out
    first = windows["input_ids"].numpy()[0]
    assert first[:12].tolist() == [101] + [2773] * 10 + [102]  # the question cut to 10 tokens
