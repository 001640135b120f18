"""Builds tfbert/serving/serving_ops.json: the oldest release of tensorflow-text and of TensorFlow that registers each op.

`tfbert check-serving` reads the table to say which TF Serving an export needs (TF Serving 2.N links
TensorFlow 2.N and tensorflow-text 2.N's ops into its binary).

How each release is inspected (wheels fetched with `python -m pip download --no-deps`, nothing installed):
- tensorflow-text: every release. Its op libraries cannot be loaded by another TensorFlow, so each
  wheel's shared objects are searched for the op's name as a complete NUL-terminated string (the string
  literal of `REGISTER_OP("Name")`). The candidate names are the ops the installed tensorflow-text
  registers (the op registry before and after `tf.load_op_library` of each library). The method is checked on the installed
  release first: searching its wheel must find exactly the ops its libraries register.
- tensorflow: the first release of each 2.x minor version (ops are added in minor releases; 2.16's
  first release is 2.16.1). Each wheel's
  generated op wrappers (`gen_*.py`, one `_apply_op_helper("Name", ...)` per op) list its ops. The
  installed release's wrappers are compared with its op registry and the coverage is printed.

usage: python tools/serving_op_table.py [--out tfbert/serving/serving_ops.json] [--work DIR]
"""

import argparse
import glob
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import zipfile

PYTHONS = ["3.11", "3.10", "3.9", "3.8", "3.7", "3.6"]
PLATFORMS = ["manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64",
             "manylinux1_x86_64"]
GEN_OP = re.compile(rb'_apply_op_helper\(\s*["\'](\w+)["\']')
VERSION = re.compile(r"^\d+(\.\d+)*$")


def pip(*args):
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def platform_args(python):
    args = ["--only-binary=:all:", "--python-version", python]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args


def released_versions(package):
    """Every final release with a Linux x86-64 wheel for some CPython we try, ascending."""
    versions = set()
    for python in PYTHONS + ["3.12"]:
        result = pip("index", "versions", package, *platform_args(python))
        for line in result.stdout.splitlines():
            if line.startswith("Available versions:"):
                versions |= {v.strip() for v in line.split(":", 1)[1].split(",") if VERSION.match(v.strip())}
    return sorted(versions, key=lambda v: tuple(map(int, v.split("."))))


def download(package, version, work):
    """Path of a Linux x86-64 wheel of package==version, or None if no such wheel exists."""
    folder = pathlib.Path(tempfile.mkdtemp(dir=work))
    for python in PYTHONS + ["3.12"]:
        result = pip("download", "--no-deps", "-d", str(folder), f"{package}=={version}", *platform_args(python))
        wheels = list(folder.glob("*.whl"))
        if result.returncode == 0 and wheels:
            return wheels[0]
    return None


def registered_ops():
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session

    registry = op_def_pb2.OpList()
    registry.ParseFromString(pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList()))
    return {op.name for op in registry.op}


def installed_text_ops():
    """{op name: library file name} for the installed tensorflow-text: what loading each library registers."""
    import importlib.metadata
    import importlib.util

    import tensorflow as tf

    # tensorflow_text is not imported: importing it would load every library at once.
    root = os.path.dirname(importlib.util.find_spec("tensorflow_text").origin)
    ops = {}
    for path in sorted(glob.glob(os.path.join(root, "python", "**", "_*.so"), recursive=True)):
        before = registered_ops()
        tf.load_op_library(path)
        ops.update({name: os.path.basename(path) for name in registered_ops() - before})
    return ops, importlib.metadata.version("tensorflow-text")


def nul_terminated_strings(wheel, names):
    """The names found as complete NUL-terminated strings in the wheel's shared objects."""
    found = set()
    patterns = {name: b"\0" + name.encode() + b"\0" for name in names}
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if ".so" not in os.path.basename(member):
                continue
            blob = archive.read(member)
            found |= {name for name, pattern in patterns.items() if name not in found and pattern in blob}
    return found


def wrapper_ops(files):
    ops = set()
    for text in files:
        ops |= {m.decode() for m in GEN_OP.findall(text)}
    return ops


def wheel_wrapper_ops(wheel):
    with zipfile.ZipFile(wheel) as archive:
        return wrapper_ops(archive.read(m) for m in archive.namelist()
                           if re.match(r"tensorflow(_core)?/.*gen_\w+\.py$", m))


def text_table(work):
    current_ops, current_version = installed_text_ops()
    names = sorted(current_ops)
    versions = released_versions("tensorflow-text")
    print(f"tensorflow-text: {len(names)} ops in the installed {current_version}; releases {versions}", flush=True)
    first, inspected = {}, []
    for version in versions:
        wheel = download("tensorflow-text", version, work)
        if wheel is None:
            print(f"  {version}: no Linux x86-64 wheel, skipped", flush=True)
            continue
        found = nul_terminated_strings(wheel, names)
        if version == current_version and found != set(names):
            raise SystemExit(f"method check failed on {version}: missed {sorted(set(names) - found)}")
        inspected.append(version)
        for name in found:
            first.setdefault(name, version)
        print(f"  {version}: {len(found)} of the ops", flush=True)
        wheel.unlink()
    return {
        "releases_inspected": inspected,
        "ops": {name: {"first_release": first.get(name), "library": current_ops[name]} for name in names},
    }


def core_table(work, text_ops):
    import tensorflow as tf

    registered = registered_ops() - set(text_ops)  # tensorflow-text's are loaded by now
    root = os.path.dirname(tf.__file__)
    installed = wrapper_ops(open(f, "rb").read() for f in glob.glob(os.path.join(root, "**", "gen_*.py"), recursive=True))
    print(f"tensorflow {tf.__version__}: wrappers name {len(installed & registered)} of {len(registered)} registered ops "
          f"(the rest are test, TPU and internal ops)", flush=True)
    current_minor = tuple(map(int, tf.__version__.split(".")[:2]))
    first_of_minor = {}
    for version in released_versions("tensorflow") + released_versions("tensorflow-cpu"):
        minor = tuple(map(int, version.split(".")[:2]))
        if (2, 0) <= minor <= current_minor and len(version.split(".")) == 3:
            first_of_minor[minor] = min(first_of_minor.get(minor, version), version, key=lambda v: tuple(map(int, v.split("."))))
    first, inspected = {}, []
    for minor, version in sorted(first_of_minor.items()):
        wheel = download("tensorflow-cpu", version, work) or download("tensorflow", version, work)
        if wheel is None:
            print(f"  {version}: no wheel, skipped", flush=True)
            continue
        ops = wheel_wrapper_ops(wheel)
        inspected.append(version)
        for name in ops:
            first.setdefault(name, version)
        print(f"  {version} ({wheel.name}): {len(ops)} ops", flush=True)
        wheel.unlink()
    return {"releases_inspected": inspected, "ops": dict(sorted(first.items()))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "tfbert" / "serving" / "serving_ops.json"))
    parser.add_argument("--work", default=None, help="folder for downloaded wheels (deleted as it goes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        table = {
            "generated_by": "tools/serving_op_table.py",
            "tensorflow_text": text_table(work),
        }
        table["tensorflow"] = core_table(work, table["tensorflow_text"]["ops"])
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
