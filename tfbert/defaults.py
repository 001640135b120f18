"""The library's defaults and choices, in one module that imports nothing.

Library functions take their default arguments from here and the command line (`tfbert.cli`) reads the
same names, so `tfbert X --help` and the Python API cannot disagree. Since this module is light, the
CLI builds its parser without importing TensorFlow (seconds), and `--help` answers at once.
"""

OUT_DIR = "saved_models"  # exports: OUT_DIR/<model name>/<version>
SERVING_ROOT = "/models"  # OUT_DIR as TF Serving sees it, as in `docker run -v $PWD/saved_models:/models`
BATCH_SIZE = 32
SEED = 0

TASKS = ("classification", "multi_label", "regression")
FINETUNE_TASKS = (*TASKS, "token-classification", "question-answering")
POOLING_MODES = ("pooled", "cls", "mean")
STRATEGIES = ("default", "mirrored", "multi-worker")

CLASSIFIER_MAX_LENGTH = 128
# Chosen on the default checkpoint by dev accuracy over seeds (benchmarks/README.md, "Fine-tuning benchmark");
# 12-layer BERT-base checkpoints usually want the BERT paper's 2e-5 to 5e-5 (--learning-rate).
FINETUNE_LEARNING_RATE = 1e-4
FINETUNE_EPOCHS = 4
FINETUNE_PATIENCE = 2

# Entity tagging: sentences longer than this are cut (their last words are tagged O); WNUT-17's longest
# sentence is 105 tokens with the default vocabulary.
TAGGER_MAX_LENGTH = 256
TAG_SCHEMES = ("iob2", "iob1")
# Chosen on WNUT-17 by dev entity F1 (benchmarks/results/finetune_wnut17_settings.json, seed 0): batch
# 32 takes too few steps on a set this small (4 epochs: 0.452); batch 16 reached 0.528 in 3 epochs, under
# transformers' PyTorch recipe (0.555), and 0.5716 at the 4th of 5 epochs. Over 3 seeds these defaults
# reach 0.560 +- 0.008 against the recipe's 0.555 +- 0.004, in 0.95x its time (finetune_wnut17.json).
TAGGER_BATCH_SIZE = 16
TAGGER_EPOCHS = 4
TAGGER_AGGREGATION = "first"  # a fine-tuned tagger's export groups entities by each word's first sub-token, as it trained

PRETRAIN_MAX_LENGTH = 128
PRETRAIN_LEARNING_RATE = 1e-4
PRETRAIN_STEPS = 1000
PRETRAIN_CHECKPOINT_EVERY = 200
PRETRAIN_HOLDOUT_EVERY = 20
PRETRAIN_EVAL_STEPS = 50

EMBED_CHUNK_SIZE = 4096

# Task exports (`tfbert export --task`): the defaults of transformers' pipelines.
EXPORT_TASKS = ("encoder", "question-answering", "token-classification", "fill-mask", "text-classification")
AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")
QA_MAX_LENGTH = 384  # the question-answering pipeline's max_seq_len
QA_DOC_STRIDE = 128
QA_MAX_ANSWER_LENGTH = 15
QA_MAX_QUESTION_LENGTH = 64
QA_MAX_WINDOWS = 32  # windows a context; tokens past the last window are not searched
# Fine-tuning question answering (`tfbert finetune --task question-answering`): windows of 384 tokens,
# as transformers' recipe (its run_qa example trains 2 epochs at batch 12).
QA_EPOCHS = 2
QA_BATCH_SIZE = 16
FILL_MASK_TOP_K = 5
