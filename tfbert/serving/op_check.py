"""`check_serving`: every op an export uses, and whether TF Serving can run it.

An op TF Serving has not linked is the classic failure ("Op type not registered 'FastBertNormalize'");
a Python callback can never run there. `serving_ops.json` holds, for each op, the first TensorFlow and
tensorflow-text release registering it.
"""

import functools
import json
import pathlib

import tensorflow_text  # noqa: F401 - registers its ops, so the running registry has them too
from tensorflow.core.framework import op_def_pb2, types_pb2
from tensorflow.python.client import pywrap_tf_session

from tfbert.serving.versions import read_saved_model

PYTHON_CALLBACK_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
PREFERRED_TEXT_RELEASE = "2.12.1"  # tensorflow-text ops TF Serving has linked for years
OP_TABLE_FILE = pathlib.Path(__file__).with_name("serving_ops.json")
MATMUL_OPS = frozenset({"MatMul", "BatchMatMulV2", "BatchMatMulV3", "_FusedMatMul"})
BFLOAT16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def _release_key(version):
    return tuple(int(part) for part in version.split("."))


@functools.lru_cache(maxsize=None)
def op_table():
    """The committed table of the first tensorflow-text and TensorFlow release registering each op."""
    with open(OP_TABLE_FILE, encoding="utf-8") as f:
        return json.load(f)


def export_nodes(export_dir):
    """Every NodeDef of the export's graphs and function libraries."""
    proto = read_saved_model(export_dir)
    nodes = []
    for meta_graph in proto.meta_graphs:
        nodes.extend(meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            nodes.extend(function.node_def)
    return nodes


def export_ops(export_dir, nodes=None):
    """{op type: count of nodes} over the export's graphs and function libraries."""
    counts = {}
    for node in nodes if nodes is not None else export_nodes(export_dir):
        counts[node.op] = counts.get(node.op, 0) + 1
    return dict(sorted(counts.items()))


def multiplies_in_bfloat16(nodes):
    """Whether any matrix multiplication of the graph runs in bfloat16 (a `precision="bfloat16"` export)."""
    return any(node.op in MATMUL_OPS and node.attr["T"].type == types_pb2.DT_BFLOAT16 for node in nodes)


def cpu_bfloat16_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's bfloat16 matrix instructions among AMX and AVX512-BF16 (from /proc/cpuinfo; None where unreadable)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    return sorted(set(flags) & BFLOAT16_FLAGS)


def _running_registry():
    registry = op_def_pb2.OpList()
    registry.ParseFromString(pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList()))
    return {op.name for op in registry.op}


def check_serving(export_dir):
    """Lists the export's ops with their origin and the oldest release having each; finds what TF Serving would refuse.

    Returns:
        dict with `ops` (a row per op type: op, nodes, source "tensorflow" / "tensorflow-text" / "unknown",
        library, first_release), `problems` (strings; empty when the export is servable),
        `warnings`, `min_tensorflow`, `min_tensorflow_text` and `min_tf_serving`.
    """
    table = op_table()
    text_ops, core_ops = table["tensorflow_text"]["ops"], table["tensorflow"]["ops"]
    registry = _running_registry()
    rows, problems, warnings = [], [], []
    graph_nodes = export_nodes(export_dir)
    if multiplies_in_bfloat16(graph_nodes) and cpu_bfloat16_flags() == []:
        warnings.append("this export multiplies matrices in bfloat16, but this machine's CPU has neither AMX nor "
                        "AVX512-BF16: it runs here, emulated, several times slower than a float32 export. Serve it on "
                        "a CPU with AMX (Intel Xeon Sapphire Rapids or later), or export with --precision float32.")
    for op, nodes in export_ops(export_dir, graph_nodes).items():
        row = {"op": op, "nodes": nodes, "library": None, "first_release": None}
        if op in PYTHON_CALLBACK_OPS:
            row["source"] = "python"
            problems.append(f"{op} calls back into Python ({nodes} nodes): TF Serving has no Python and cannot run it. "
                            "Rebuild the model without tf.py_function / tf.numpy_function.")
        elif op in text_ops:
            row.update(source="tensorflow-text", library=text_ops[op]["library"], first_release=text_ops[op]["first_release"])
            if _release_key(row["first_release"]) > _release_key(PREFERRED_TEXT_RELEASE):
                warnings.append(f"{op} first appears in tensorflow-text {row['first_release']}: TF Serving older than "
                                f"{'.'.join(row['first_release'].split('.')[:2])} will refuse the export (Op type not registered).")
        elif op in core_ops or op in registry:
            row.update(source="tensorflow", first_release=core_ops.get(op))
            if row["first_release"] is None:
                warnings.append(f"{op} is a TensorFlow op without a Python wrapper, so its first release is not in "
                                "the op table; check that the TF Serving in use has it.")
        else:
            row["source"] = "unknown"
            problems.append(f"{op} is registered by neither TensorFlow nor tensorflow-text: TF Serving will refuse the "
                            "export with \"Op type not registered\" unless it is built with that op library.")
        rows.append(row)
    text_releases = [r["first_release"] for r in rows if r["source"] == "tensorflow-text"]
    core_releases = [r["first_release"] for r in rows if r["source"] == "tensorflow" and r["first_release"]]
    min_text = max(text_releases, key=_release_key, default=None)
    min_core = max(core_releases, key=_release_key, default=None)
    minors = [".".join(v.split(".")[:2]) for v in (min_text, min_core) if v]
    return {
        "export_dir": str(export_dir),
        "ops": rows,
        "problems": problems,
        "warnings": warnings,
        "min_tensorflow_text": min_text,
        "min_tensorflow": min_core,
        "min_tf_serving": max(minors, key=_release_key) if minors else None,
        # A first release equal to the oldest release inspected means "that release or earlier".
        "oldest_inspected": {"tensorflow": table["tensorflow"]["releases_inspected"][0],
                             "tensorflow-text": table["tensorflow_text"]["releases_inspected"][0]},
    }


def format_report(report):
    """The check-serving report as text: a table of ops, then the verdict."""
    lines = [f"SavedModel: {report['export_dir']}", "", f"{'op':32} {'nodes':>6}  {'source':16} {'first release':14} library"]
    for row in report["ops"]:
        first = row["first_release"] or ("-" if row["source"] in ("python", "unknown") else "?")
        if first == report["oldest_inspected"].get(row["source"]):
            first = f"<={first}"
        lines.append(f"{row['op']:32} {row['nodes']:>6}  {row['source']:16} {first:14} {row['library'] or ''}")
    text_count = sum(r["source"] == "tensorflow-text" for r in report["ops"])
    lines += ["", f"{len(report['ops'])} op types: {text_count} from tensorflow-text, "
                  f"{sum(r['source'] == 'tensorflow' for r in report['ops'])} from TensorFlow."]
    if report["min_tf_serving"]:
        lines.append(f"Needs TensorFlow >= {report['min_tensorflow']} and tensorflow-text >= {report['min_tensorflow_text']} "
                     f"ops: TF Serving >= {report['min_tf_serving']} (TF Serving 2.N links TensorFlow 2.N and tensorflow-text 2.N).")
    lines += [f"warning: {w}" for w in report["warnings"]]
    lines += [f"error: {p}" for p in report["problems"]]
    lines.append("FAIL: TF Serving cannot run this export." if report["problems"] else "OK: TF Serving can run this export.")
    return "\n".join(lines)
