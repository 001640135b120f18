"""The files of a Hugging Face checkpoint folder, by name: what the reader looks for and the writer writes."""

from tfbert.text.vocabulary import VOCAB_FILE  # noqa: F401 - part of the layout; defined with the vocabulary reader

CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
SAFETENSORS_FILE = "model.safetensors"
H5_FILE = "tf_model.h5"
PICKLE_FILE = "pytorch_model.bin"
WEIGHT_FILES = (SAFETENSORS_FILE, H5_FILE, PICKLE_FILE)  # in the order the reader prefers them
SENTENCE_TRANSFORMERS_MODULES_FILE = "modules.json"
