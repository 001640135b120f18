"""tfbert: BERT as a first-class TensorFlow citizen (raw strings in, hidden states out, in one graph)."""

from tfbert.encoder import build_encoder
from tfbert.errors import TfbertError
from tfbert.export import export_saved_model
from tfbert.tokenizer import BertTokenizerLayer

__version__ = "0.1.0"

__all__ = ["BertTokenizerLayer", "TfbertError", "build_encoder", "export_saved_model"]
