"""TF Serving warm-up: `assets.extra/tf_serving_warmup_requests` (a TFRecord of `PredictionLog`) in an
export, so TF Serving runs every signature at a few sequence lengths before it takes traffic."""

import pathlib

import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, input_pb2, model_pb2, predict_pb2, prediction_log_pb2,
                                     regression_pb2)

from tfbert.errors import TfbertError
from tfbert.serving.example_signatures import CLASSIFY_METHOD, EXAMPLES, METHOD_NAMES, example_features

WARMUP_FILE = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"
_WARMUP_WORDS = "the quick brown fox jumps over the lazy dog".split()
_WARMUP_BATCH = 8


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


def _example(features):
    """A tf.Example of bytes features, one value each."""
    return tf.train.Example(features=tf.train.Features(feature={
        name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()])) for name, value in features.items()}))


def warmup_records(model_name, signatures, max_length):
    """`PredictionLog` protos: every signature on every warm-up batch.

    The signatures on serialized tf.Examples (`tfbert.serving.example_signatures`) get Examples of the
    same texts, with serving_default's inputs as features: `serve_examples` as a Predict request,
    `classify` and `regress` as the Classify and Regress requests TF Serving's APIs take.

    Args:
        model_name: str. The served model's name (TF Serving's model_spec.name).
        signatures: dict of signature name to its tf.function (with an input_signature).
        max_length: int. The export's longest sequence.
    """
    features = example_features(signatures["serving_default"])
    records = []
    for name, function in sorted(signatures.items()):
        inputs = [spec.name for spec in function.input_signature]
        for batch in warmup_batches(max_length):
            # Each input after the first (the pair) gets the batch reversed: other lengths, same batch size.
            columns = [batch if position == 0 else list(reversed(batch))
                       for position in range(max(len(inputs), len(features)))]
            examples = [_example(dict(zip(features, texts))) for texts in zip(*columns[:len(features)])]
            spec = model_pb2.ModelSpec(name=model_name, signature_name=name)
            if name in METHOD_NAMES:
                request = input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples))
                log = (prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
                           request=classification_pb2.ClassificationRequest(model_spec=spec, input=request)))
                       if METHOD_NAMES[name] == CLASSIFY_METHOD else
                       prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(
                           request=regression_pb2.RegressionRequest(model_spec=spec, input=request))))
                records.append(log)
                continue
            request = predict_pb2.PredictRequest(model_spec=spec)
            if inputs == [EXAMPLES.name]:
                values = {EXAMPLES.name: [example.SerializeToString() for example in examples]}
            else:
                values = {input_name: [t.encode() for t in columns[position]] for position, input_name in enumerate(inputs)}
            for input_name, value in values.items():
                request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value, dtype=tf.string))
            records.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return records


def write_warmup(export_dir, records):
    """Writes `records` to `export_dir/assets.extra/tf_serving_warmup_requests`."""
    path = pathlib.Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def read_warmup(export_dir):
    """The export's warm-up requests, as `PredictionLog` protos."""
    path = pathlib.Path(export_dir) / WARMUP_FILE
    if not path.is_file():
        raise TfbertError(f"{path} is missing: this export has no warm-up requests.")
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
