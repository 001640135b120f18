"""Jobs: files in, trained models, checkpoints and embeddings out, each resumable after a kill.

    records.py         records of CSV, TSV and JSONL files, with their lines
    examples.py        labelled examples: read_examples, label names and ids
    batching.py        make_dataset: length-bucketed tf.data batches of raw strings
    best_epoch.py      BestEpoch: best dev epoch and early stopping, kept on disk
    distribution.py    one process, mirrored or multi-worker
    tensorboard.py     TensorBoard logs of a run: epoch scalars, learning rate, hyper-parameters
    training_run.py    a fine-tuning run's work folder, fit with the best epoch kept, its result and model card
    finetune.py        finetune: the `tfbert finetune` run (classifiers; hands taggers to finetune_tagger)
    tagged_text.py     tagged words: CoNLL and JSONL readers, IOB1/IOB2 checks, tag names and ids
    entity_scores.py   entity-level precision, recall and F1, counted as conlleval counts them
    tagging.py         words and tags to token labels, word tags back from logits, dev entity F1
    finetune_tagger.py finetune_tagger: the `tfbert finetune --task token-classification` run
    squad.py           SQuAD v1.1 / v2.0 JSON and JSONL readers, answers checked against their contexts
    squad_metrics.py   exact match and F1 as SQuAD's official scripts count them
    qa_features.py     training windows and answer positions; dev EM/F1 with the export's decoding
    finetune_qa.py     finetune_qa: the `tfbert finetune --task question-answering` run
    sentence_pairs.py  next-sentence-prediction pairs streamed from a corpus
    pretrain.py        pretrain: the `tfbert pretrain` run
    corpus_files.py    (id, text) records of corpus files for embedding
    embed_corpus.py    embed_corpus: the `tfbert embed-corpus` run
    beam.py            the same on Apache Beam (RunInference), `python -m tfbert.beam`
"""
