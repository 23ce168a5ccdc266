"""The package's floors, read from the source with ``ast``: each module imports only its own floor
or the floors below it, the import graph has no cycle, and no import hides inside a function
except those of optional dependencies."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "refusal_tl"
# lowest first; a module's floor is that of its first name under refusal_tl (refusal_tl.steer.hooks: steer)
FLOORS = [
    ("errors",),
    ("io", "profiles", "data", "stats"),
    ("model", "geometry", "optim", "plotting", "gguf_file"),
    ("steer", "export"),
    ("eval", "chat"),
    ("dim",),
    ("rdo",),
    ("cone", "repind"),
    ("gcg", "abliterate"),
    ("pipeline",),
    ("commands", "cli"),
]
FLOOR = {name: i for i, names in enumerate(FLOORS) for name in names}
OPTIONAL = ("lm_eval", "strong_reject", "nanogcg")  # imported where used, so the package works without them


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path, known: dict) -> list[tuple[str, bool]]:
    """(imported refusal_tl module or external top-level name, inside a function?) for every import."""
    out = []

    def visit(node, local):
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                for alias in child.names:
                    full = f"{child.module}.{alias.name}"
                    out.append((full if full in known else child.module, inner))
            elif isinstance(child, ast.Import):
                out.extend((alias.name, inner) for alias in child.names)
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return out


def floor(module: str) -> int:
    return FLOOR[module.split(".")[1]]


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, bool]]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_every_module_has_a_floor(graph):
    assert not [m for m in graph if m != "refusal_tl" and m.split(".")[1] not in FLOOR]


def test_no_module_imports_a_higher_floor_or_the_top_level_package(graph):
    upward = [(m, t) for m, deps in graph.items() if m != "refusal_tl"
              for t, _ in deps if t.startswith("refusal_tl") and (t == "refusal_tl" or floor(t) > floor(m))]
    assert not upward, upward


def test_the_import_graph_has_no_cycle(graph):
    edges = {m: {t for t, _ in deps if t in graph and t != m and m != "refusal_tl"} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def cycle_from(m, path):
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                return path + [m, t]
            if t not in state and (found := cycle_from(t, path + [m])):
                return found
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            assert (found := cycle_from(m, [])) is None, " -> ".join(found)


def test_no_function_local_imports_but_optional_dependencies(graph):
    local = [(m, t) for m, deps in graph.items() for t, inner in deps if inner and not t.startswith(OPTIONAL)]
    assert not local, local


def test_the_floor_test_sees_a_violation(tmp_path):
    """The graph reader itself: an upward and a function-local import in a made-up module are found."""
    path = tmp_path / "made_up.py"
    path.write_text("from refusal_tl.pipeline import stages\n\ndef f():\n    import pandas\n")
    found = imports("refusal_tl.steer.made_up", path, {"refusal_tl.pipeline.stages": path})
    assert found == [("refusal_tl.pipeline.stages", False), ("pandas", True)]
    assert floor("refusal_tl.pipeline.stages") > floor("refusal_tl.steer.made_up")
