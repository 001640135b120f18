"""Keras models on raw strings: BERT, its heads, and the surgery the Hugging Face base classes offer.

    backbone.py       BertBackbone (transformers' TFBertModel with a round-tripping config, pruned heads)
    weights.py        checkpoint weights in, PyTorch-named weights out
    pooling.py        Pooling: pooled, cls or mean, optionally L2-normalised
    datasets.py       AutotuneFree: fit, evaluate and predict without tf.data autotuning's wait
    encoder.py        BertEncoder, build_encoder (and RawTextModel, the base of the raw-string models)
    length_groups.py  BERT on a batch in groups of similar length
    streams.py        in_streams: an export's batch as independent streams of texts, one a core
    inference_weights.py  InferenceWeights: the weights exports compute with (float32, bfloat16 copies)
    inference.py      inference_graph: BERT's inference in fewer, fusible ops, for exports
    embedding.py      embed: sentence embeddings of lists of texts
    optimization.py   create_optimizer: AdamW (dense embedding-table updates), warm-up, linear decay
    precision.py      training_precision: bfloat16 mixed-precision training (float32 variables)
    classifier.py     BertClassifier, build_classifier, save_classifier, load_classifier
    token_classifier.py  BertTokenClassifier, build_token_classifier (transformers' TFBertForTokenClassification)
    question_answerer.py BertQuestionAnswerer, build_question_answerer (transformers' TFBertForQuestionAnswering)
    transformers_layout.py  save_transformers: fine-tuned models as Hugging Face folders for PyTorch
    pretrainer.py     BertPretrainer (masked LM + next-sentence prediction), save_pretrained
    surgery.py        add_tokens, prune_heads
"""
