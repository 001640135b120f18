"""Checkpoints in Hugging Face layout: where they come from, what they hold, and writing them back.

    presets.py     named checkpoints (data only)
    layout.py      the folder's file names
    fetch.py       presets, local folders and hub ids to a local folder (cache, sha256)
    checkpoint.py  load_checkpoint: the checked config, vocabulary, tokenizer options and weights file
    state_dict.py  weights files to numpy arrays (PyTorch names)
    model_card.py  ModelCard: the generated README.md of a saved model (Hugging Face's format)
    writer.py      write_checkpoint: the same layout, written, with its model card
"""
