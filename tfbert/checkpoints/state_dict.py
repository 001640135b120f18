"""Reading a PyTorch-layout weights file (safetensors, or an opted-in pickle) into numpy arrays, without running code."""

from safetensors import SafetensorError
from safetensors.numpy import load_file

from tfbert.checkpoints.layout import SAFETENSORS_FILE
from tfbert.errors import TfbertError


def read_state_dict(weights_file):
    """A PyTorch-layout state dict of numpy arrays, read without executing code."""
    if weights_file.name == SAFETENSORS_FILE:
        try:
            return load_file(str(weights_file))
        except (SafetensorError, OSError, ValueError) as e:
            raise TfbertError(f"the weights file {weights_file} is corrupt or truncated ({e}).") from e
    try:
        import torch  # optional: only pickle checkpoints need it
    except ImportError as e:
        raise TfbertError(f"reading {weights_file} needs torch; install it or convert the file to safetensors.") from e
    try:
        state = torch.load(str(weights_file), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for bad or unsafe files
        raise TfbertError(f"could not read {weights_file} safely ({type(e).__name__}: {e}).") from e
    return {key: value.numpy() for key, value in state.items()}
