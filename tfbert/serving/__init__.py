"""Exports for TensorFlow Serving, and everything that reads them back.

    versions.py           TF Serving's version folders: scan, resolve, prune
    loading.py            load_export: the one loader, with one clear error; SavedModelEmbedder
    modules.py            the tf.Modules saved: an encoder's and a classifier's signatures
    warmup.py             assets.extra/tf_serving_warmup_requests
    export.py             export_saved_model: a version written atomically
    models_config.py      models.config for --model_config_file
    op_check.py           check_serving: the ops of an export and whether TF Serving has them
    saved_model_layer.py  SavedModelLayer: an export as a trainable Keras layer
    keras3_layer.py       Keras3SavedModelLayer: the same for Keras 3 (imported on its own: it imports keras)
    example_signatures.py serve_examples, classify and regress on serialized tf.Examples; TF Serving's method names
    export_card.py        an export's model card, assets.extra/README.md
"""
