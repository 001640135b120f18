"""The package's shape, checked from its source with `ast`: imports point one way down the chain
(text -> checkpoints -> models -> serving -> jobs -> cli) with no cycle, no import hides inside a
function without saying why, no module reaches into another's private names, and modules stay small."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tfbert"
# The chain, lowest first; a module may import from its own layer and the layers before it.
LAYERS = ["base", "text", "checkpoints", "models", "serving", "jobs", "cli"]
BASE = {"tfbert.errors", "tfbert.files", "tfbert.defaults"}
# Modules whose function-level imports are their design, explained in their docstrings.
LAZY_BY_DESIGN = {"tfbert.cli.commands"}
MAX_LINES = 330


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def parse(name):
    path = MODULES[name]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_modules(node):
    """The tfbert modules an import statement imports (`from tfbert import x` names module tfbert.x)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.module is None:
        return []
    else:
        names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                 for alias in node.names]
    return [name for name in names if name == "tfbert" or name.startswith("tfbert.")]


def function_level_imports(tree):
    """Import statements inside a function or method body, anywhere in the module."""
    found = []
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.append(node)
    return found


def import_graph():
    graph = {}
    for name in MODULES:
        tree = parse(name)
        graph[name] = {target for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                       for target in imported_modules(node) if target != name}
    return graph


def layer(name):
    if name in BASE or name in ("tfbert", "tfbert.__main__", "tfbert.beam"):
        return "base" if name in BASE else "entry"
    return name.split(".")[1]


def find_cycle(graph):
    """A list of modules forming an import cycle, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_point_down_the_chain():
    wrong = []
    for name, targets in import_graph().items():
        if layer(name) == "entry":
            continue
        for target in targets:
            if target == "tfbert" or layer(target) == "entry":
                wrong.append(f"{name} imports {target}")
            elif LAYERS.index(layer(target)) > LAYERS.index(layer(name)):
                wrong.append(f"{name} ({layer(name)}) imports {target} ({layer(target)})")
    assert not wrong, "\n".join(wrong)


def test_function_level_imports_say_why():
    unexplained = []
    for name in MODULES:
        if name in LAZY_BY_DESIGN:
            continue
        lines = MODULES[name].read_text(encoding="utf-8").splitlines()
        for node in function_level_imports(parse(name)):
            if imported_modules(node):
                unexplained.append(f"{name}:{node.lineno}: imports a tfbert module inside a function")
            elif "#" not in lines[node.lineno - 1]:
                unexplained.append(f"{name}:{node.lineno}: `{lines[node.lineno - 1].strip()}` inside a function "
                                   "without a comment saying why")
    assert not unexplained, "\n".join(unexplained)


def test_no_private_name_used_across_modules():
    used = []
    for name in MODULES:
        for node in ast.walk(parse(name)):
            if isinstance(node, ast.ImportFrom) and imported_modules(node):
                used += [f"{name}:{node.lineno}: imports {alias.name}" for alias in node.names
                         if alias.name.startswith("_") and not alias.name.startswith("__")]
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    used.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert not used, "\n".join(used)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it (one concept a module)"
