"""The public surface: one sorted __all__, and aiohttp only where it belongs."""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from collections.abc import Iterator
from pathlib import Path

import mettl_async
from mettl_async._session import user_agent

PACKAGE = Path(mettl_async.__file__).parent
#: Client-side modules that may import aiohttp at run time: only the session layer.
#: Server-side modules (the fake Mettl, the webhook receiver, the CLI that runs
#: them) are aiohttp.web applications by nature.
AIOHTTP_ALLOWED = {"_session.py", "webhooks/_aiohttp.py", "cli/webhooks.py", "cli/entry.py"}
#: Packages that are servers by nature: every module in them may import aiohttp.
AIOHTTP_PACKAGES = {"testing"}


def test_all_is_sorted_and_complete() -> None:
    names = mettl_async.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(mettl_async, name), name
    public = {n for n in dir(mettl_async) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(mettl_async, n)).__name__ == "module"}
    assert public - modules - {"annotations"} <= set(names) | {"testing", "webhooks"}


def _run_time_import_statements(path: Path) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of ``path`` outside ``if TYPE_CHECKING:`` blocks,
    wherever it stands (function bodies included)."""

    def visit(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                yield from visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(ast.parse(path.read_text(encoding="utf-8")))


def _runtime_imports(path: Path) -> set[str]:
    """Top-level modules imported outside ``if TYPE_CHECKING:`` blocks."""
    found: set[str] = set()
    for node in _run_time_import_statements(path):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_session_layer_imports_aiohttp() -> None:
    offenders = sorted(
        relative
        for path in PACKAGE.rglob("*.py")
        if (relative := path.relative_to(PACKAGE).as_posix()) not in AIOHTTP_ALLOWED
        and relative.split("/")[0] not in AIOHTTP_PACKAGES
        and {"aiohttp", "yarl"} & _runtime_imports(path)
    )
    assert offenders == []


def test_pure_core_modules_do_no_io() -> None:
    for name in (
        "_signing.py",
        "_protocol.py",
        "_retry.py",
        "_ratelimit.py",
        "_errors.py",
        "_paging.py",
        "_timefmt.py",
        "_enums.py",
        "_numbers.py",
        "_config.py",
        "_validation/__init__.py",
        "_validation/base.py",
        "_validation/assessments.py",
        "_validation/schedules.py",
        "_uploads.py",
        "_codegen.py",
        "_warnonce.py",
        *(f"_convert/{path.name}" for path in sorted((PACKAGE / "_convert").glob("*.py"))),
        "_registration/rules.py",
        "_registration/wire.py",
        "_endpoints.py",
        "_listing.py",
        "_version.py",
    ):
        imports = _runtime_imports(PACKAGE / name)
        assert not imports & {"aiohttp", "yarl", "asyncio", "socket", "time", "os"}, name


def test_one_version_everywhere() -> None:
    """``__version__``, the User-Agent header and pyproject.toml agree."""
    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    # One source: pyproject.toml reads the version from _version.py.
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "mettl_async/_version.py"
    assert importlib.metadata.version("mettl-async") == mettl_async.__version__
    assert user_agent().startswith(f"mettl-async/{mettl_async.__version__} ")


def test_the_models_do_not_import_the_validation() -> None:
    """``_validation`` imports the models and registers their checks, never the other way."""
    for path in sorted((PACKAGE / "_models").glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.add(node.module or "")
                names.update(alias.name for alias in node.names)
        assert not any("_validation" in name for name in names), path.name


def _module_name(path: Path) -> str:
    parts = ["mettl_async", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_edges(path: Path, name: str, modules: set[str]) -> set[str]:
    """Every module of the package that ``path`` imports at run time, wherever the
    import statement stands (function bodies included, ``if TYPE_CHECKING:`` not),
    with the packages whose ``__init__`` that import runs."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _run_time_import_statements(path):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            module = ".".join([*base, node.module] if node.module else base)
        else:
            module = node.module or ""
        for alias in node.names:
            submodule = f"{module}.{alias.name}"
            targets.add(submodule if submodule in modules else module)
    own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    edges: set[str] = set()
    for target in targets:
        pieces = target.split(".")
        if target in modules:  # what the statement names: always an edge, even to a parent
            edges.add(target)
        for i in range(1, len(pieces)):  # the packages it runs on the way
            candidate = ".".join(pieces[:i])
            if candidate in modules and candidate not in own_packages:
                edges.add(candidate)
    edges.discard(name)
    return edges


def test_the_package_import_graph_has_no_cycle() -> None:
    """No module imports, even lazily inside a function, a module that imports it back."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph = {name: _import_edges(path, name, modules) for name, path in paths.items()}
    assert "mettl_async._client" in graph["mettl_async"]  # the walk sees the imports
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                walk(target, [*trail, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert cycles == []
