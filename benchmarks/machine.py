"""What every benchmark result records about where it ran: CPU model and flags, cores, library versions.

The machines change between runs (AMD EPYC, Intel Xeon with or without AVX-512 and AMX), so a figure
means something only beside the machine and the versions that produced it.
"""

import datetime
import importlib.metadata
import os
import platform
import sys

PACKAGES = ("tfbert", "tensorflow", "tensorflow-text", "tf-keras", "transformers", "torch", "onnxruntime", "onnx",
            "numpy", "scikit-learn", "apache-beam")
# The instruction sets that decide which kernels oneDNN, PyTorch and ONNX Runtime pick.
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512vl", "amx_bf16", "amx_int8", "amx_tile")
# Settings that change which kernels run: TensorFlow turns oneDNN on by default only on some CPUs
# (those with AVX512_VNNI, AVX512_BF16 or AMX), and TF_ENABLE_ONEDNN_OPTS overrides that.
ENVIRONMENT = ("TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS", "ONEDNN_MAX_CPU_ISA")


def _cpu():
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return model, sorted(flag for flag in FLAGS if flag in flags)


def machine_info():
    """A dict for a result JSON: date, CPU model, relevant flags, cores, Python and package versions."""
    model, flags = _cpu()
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "cpu": model,
            "cpu_flags": flags, "cpus": os.cpu_count(), "python": platform.python_version(), "versions": versions,
            "environment": {name: os.environ[name] for name in ENVIRONMENT if name in os.environ},
            "tensorflow_onednn": _tensorflow_onednn()}


def _tensorflow_onednn():
    """Whether TensorFlow runs its oneDNN kernels in this process (None if TensorFlow is not imported)."""
    if "tensorflow" not in sys.modules:
        return None
    from tensorflow.python.util import _pywrap_util_port  # private: TensorFlow has no public query for it

    return bool(_pywrap_util_port.IsMklEnabled())
