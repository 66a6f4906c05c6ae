"""The shape of src/: no import cycle, function-local imports only with a reason, short signatures.

Read from the source with ``ast`` (nothing is imported): an import inside a function counts
like one at the top, since it ties the two modules together all the same; imports under
``if TYPE_CHECKING:`` are left out, as they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "selfcross"
#: Words one of which the comment of a function-local selfcross import must contain: the two
#: reasons for such an import (an import that is slow or needs an extra, deferred until used).
REASONS = ("start-up", "optional", "extra")
#: At most this many parameters for a public function (``self``/``cls`` not counted).
MAX_PARAMETERS = 8


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}
TREES = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in MODULES.items()}


def _target(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The selfcross modules an import statement loads (``from pkg import mod`` names mod)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = module.split(".")
            if MODULES[module].name != "__init__.py":
                pkg = pkg[:-1]
            pkg = pkg[: len(pkg) - node.level + 1]
            base = ".".join(pkg + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    out = []
    for name in names:
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in MODULES and name != module:
            out.append(name)
    return out


def _imports(module: str) -> list[tuple[ast.ImportFrom | ast.Import, bool]]:
    """Every executed import statement of ``module`` and whether it sits inside a function."""
    found: list[tuple[ast.ImportFrom | ast.Import, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    visit(other, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, in_function))
            function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, in_function or function)

    visit(TREES[module], False)
    return found


GRAPH = {m: sorted({t for node, _ in _imports(m) for t in _target(m, node)}) for m in MODULES}


def _a_cycle() -> list[str] | None:
    """One import cycle of :data:`GRAPH` (depth-first search), or ``None``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in GRAPH[m]:
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (cycle := dfs(t)) is not None:
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in GRAPH:
        if m not in state and (cycle := dfs(m)) is not None:
            return cycle
    return None


def test_the_graph_sees_function_level_imports():
    # selfcross/__init__.py imports the predictor only inside its module __getattr__
    assert "selfcross.serve.predict" in GRAPH["selfcross"]
    assert "selfcross.config" in GRAPH["selfcross.training.loop"]


def test_no_import_cycle_in_src():
    cycle = _a_cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _has_reason(lines: list[str], node: ast.AST) -> bool:
    here = lines[node.lineno - 1]
    above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
    comment = (here.split("#", 1)[1] if "#" in here else "") + (above[1:] if above.startswith("#") else "")
    return any(word in comment for word in REASONS)


def test_function_local_selfcross_imports_say_why():
    unexplained = []
    for m, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node, in_function in _imports(m):
            if in_function and _target(m, node) and not _has_reason(lines, node):
                unexplained.append(f"{path.relative_to(SRC.parent)}:{node.lineno}")
    assert not unexplained, (
        f"function-local selfcross imports without a one-line why ({' / '.join(REASONS)}): "
        + ", ".join(unexplained)
    )


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    return len(names) - int(bool(names) and names[0] in ("self", "cls"))


def test_no_public_function_takes_more_than_eight_parameters():
    long = [
        f"{module}.{node.name} ({_parameters(node)})"
        for module, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and not node.name.startswith("_")
        and _parameters(node) > MAX_PARAMETERS
    ]
    assert not long, f"public functions with more than {MAX_PARAMETERS} parameters: {long}"


def test_the_parameter_count_sees_a_long_signature():
    fn = ast.parse("def f(self, a, b, /, c, *args, d, e, f, g, **kw): pass").body[0]
    assert _parameters(fn) == 9
