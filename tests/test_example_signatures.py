"""tf.Example signatures (tfbert.serving.example_signatures): `serve_examples`, and `classify` / `regress`
for TF Serving's Classify and Regress APIs, driven by tensorflow-serving-api's request protos and run
through TensorFlow's C API as TF Serving runs them."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, input_pb2, model_pb2, predict_pb2, regression_pb2

from conftest import debian_texts
from test_serving import c_runner, run_c_api, signature_defs  # noqa: F401
from tfbert.serving import warmup
from tfbert.serving.example_signatures import CLASSIFY_METHOD, REGRESS_METHOD
from tfbert.serving.export import export_saved_model

LABELS = ["games", "libs", "net"]
PREDICT_METHOD = "tensorflow/serving/predict"


def example(**features):
    return tf.train.Example(features=tf.train.Features(feature={
        name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()])) for name, value in features.items()}))


def serialized_examples(request_input):
    """The string tensor TF Serving feeds a Classify or Regress signature from a request's `input`
    (servables/tensorflow/util.cc, InputToSerializedExampleTensor): each Example serialized, merged
    over the context for `example_list_with_context`."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in request_input.example_list.examples]
    context = request_input.example_list_with_context.context
    merged = []
    for e in request_input.example_list_with_context.examples:
        full = tf.train.Example()
        full.CopyFrom(context)
        full.MergeFrom(e)
        merged.append(full.SerializeToString())
    return merged


def method_names(export_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    import pathlib

    proto = saved_model_pb2.SavedModel.FromString((pathlib.Path(export_dir) / "saved_model.pb").read_bytes())
    (meta_graph,) = proto.meta_graphs
    return {name: signature.method_name for name, signature in meta_graph.signature_def.items()
            if not name.startswith("__")}  # not TensorFlow's own __saved_model_init_op


def check_classify_signature(inputs, outputs):
    """TF Serving's PreProcessClassification rules (servables/tensorflow/classifier.cc)."""
    assert list(inputs) == ["inputs"] and 1 <= len(outputs) <= 2 and set(outputs) <= {"classes", "scores"}


@pytest.fixture(scope="module")
def classifier_exports(tmp_path_factory, tiny_checkpoint):
    import tfbert

    root = tmp_path_factory.mktemp("example-exports")
    tf.keras.utils.set_random_seed(0)
    models = {"single": tfbert.build_classifier(str(tiny_checkpoint), labels=LABELS),
              "pair": tfbert.build_classifier(str(tiny_checkpoint), labels=LABELS, text_pair=True),
              "regression": tfbert.build_classifier(str(tiny_checkpoint), task="regression")}
    return {kind: str(export_saved_model(model, root / kind)) for kind, model in models.items()}


def test_signatures_carry_tf_servings_method_names(classifier_exports):
    for kind, path in classifier_exports.items():
        methods = method_names(path)
        special = {"classify": CLASSIFY_METHOD} if kind != "regression" else {"regress": REGRESS_METHOD}
        assert {name: method for name, method in methods.items() if method != PREDICT_METHOD} == special, kind
        assert "serve_examples" in methods and "serving_default" in methods
        inputs, outputs = signature_defs(path)[next(iter(special))]
        if kind == "regression":
            assert list(inputs) == ["inputs"] and list(outputs) == ["outputs"]  # regressor.cc's kRegressInputs/Outputs
        else:
            check_classify_signature(inputs, outputs)
        assert list(signature_defs(path)["serve_examples"][0]) == ["examples"]
    # The fingerprint was rewritten with the method names: TensorFlow reads it back.
    assert tf.saved_model.experimental.read_fingerprint(classifier_exports["single"]).saved_model_checksum


def test_classify_regress_and_serve_examples_through_the_c_api(c_runner, classifier_exports, tmp_path):  # noqa: F811
    import tensorflow_text  # noqa: F401

    texts = debian_texts("dev", 5) + ["", "café 中文 😀"]
    pairs = list(reversed(texts))
    spec = model_pb2.ModelSpec(name="example-model", signature_name="classify")
    single = classification_pb2.ClassificationRequest(model_spec=spec, input=input_pb2.Input(
        example_list=input_pb2.ExampleList(examples=[example(text=t, other="ignored") for t in texts])))
    pair = classification_pb2.ClassificationRequest(model_spec=spec, input=input_pb2.Input(
        example_list_with_context=input_pb2.ExampleListWithContext(
            context=example(text_pair="the context's pair is overridden"),
            examples=[example(text=t, text_pair=p) for t, p in zip(texts, pairs)])))
    regression = regression_pb2.RegressionRequest(model_spec=model_pb2.ModelSpec(name="m", signature_name="regress"),
                                                  input=single.input)
    predict = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="m", signature_name="serve_examples"))
    predict.inputs["examples"].CopyFrom(tf.make_tensor_proto(serialized_examples(single.input), dtype=tf.string))

    calls = {"single": [("classify", {"inputs": serialized_examples(single.input)}),
                        ("serve_examples", {"examples": list(tf.make_ndarray(predict.inputs["examples"]))})],
             "pair": [("classify", {"inputs": serialized_examples(pair.input)})],
             "regression": [("regress", {"inputs": serialized_examples(regression.input)}),
                            ("serve_examples", {"examples": serialized_examples(regression.input)})]}
    for kind, requests in calls.items():
        folder = tmp_path / kind
        folder.mkdir()
        results = run_c_api(c_runner, classifier_exports[kind], folder, requests)
        default = tf.saved_model.load(classifier_exports[kind]).signatures["serving_default"]
        expected = (default(text=tf.constant(texts), text_pair=tf.constant(pairs)) if kind == "pair"
                    else default(text=tf.constant(texts)))
        for (signature, _), outputs in zip(requests, results):
            if signature == "classify":  # what PostProcessClassificationResult checks and returns
                classes, scores = outputs["classes"], outputs["scores"]
                assert classes.shape == scores.shape == (len(texts), len(LABELS)) and scores.dtype == np.float32
                assert (classes == np.array([label.encode() for label in LABELS], dtype=object)).all()
                np.testing.assert_array_equal(scores, expected["probabilities"].numpy())
                assert [LABELS[i] for i in scores.argmax(1)] == [label.decode() for label in expected["label"].numpy()]
            elif signature == "regress":
                assert outputs["outputs"].shape == (len(texts),) and outputs["outputs"].dtype == np.float32
                np.testing.assert_array_equal(outputs["outputs"], expected["score"].numpy())
            else:  # serve_examples: serving_default's outputs, bit for bit
                assert sorted(outputs) == sorted(expected)
                for name, value in expected.items():
                    np.testing.assert_array_equal(outputs[name], value.numpy())


def test_bad_examples_fail_the_request_with_the_feature_named(classifier_exports):
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(classifier_exports["pair"])
    missing = [example(text="a pair without its second text").SerializeToString()]
    with pytest.raises(tf.errors.InvalidArgumentError, match="text_pair"):
        loaded.signatures["classify"](inputs=tf.constant(missing))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Could not parse example input"):
        loaded.signatures["serve_examples"](examples=tf.constant([b"not a tf.Example"]))
    two_values = tf.train.Example(features=tf.train.Features(feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"one", b"two"])),
        "text_pair": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}))
    with pytest.raises(tf.errors.InvalidArgumentError, match="text"):
        loaded.signatures["serve_examples"](examples=tf.constant([two_values.SerializeToString()]))
    # The server survives: the next good request is answered.
    good = [example(text="a", text_pair="b").SerializeToString()]
    assert loaded.signatures["classify"](inputs=tf.constant(good))["scores"].shape == (1, len(LABELS))


def test_warmup_sends_classify_and_regress_requests_that_replay(classifier_exports):
    import tensorflow_text  # noqa: F401

    for kind, path in classifier_exports.items():
        loaded = tf.saved_model.load(path)
        records = warmup.read_warmup(path)
        kinds = {}
        for record in records:
            log = record.WhichOneof("log_type")
            request = getattr(record, log).request
            name = request.model_spec.signature_name
            kinds.setdefault(name, set()).add(log)
            if log in ("classify_log", "regress_log"):
                outputs = loaded.signatures[name](inputs=tf.constant(serialized_examples(request.input)))
            else:
                outputs = loaded.signatures[name](**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
            assert all(value.shape[0] >= 1 for value in outputs.values())
        special = "regress" if kind == "regression" else "classify"
        assert kinds[special] == {f"{special}_log"} and kinds["serve_examples"] == {"predict_log"}
