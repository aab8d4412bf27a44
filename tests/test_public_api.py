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


def _import_statements(
    path: Path, *, include_type_checking: bool = False
) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of ``path``, wherever it stands (function bodies
    included); those under ``if TYPE_CHECKING:`` only if ``include_type_checking``."""

    def visit(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
        if (
            not include_type_checking
            and isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test)
        ):
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
    for node in _import_statements(path):
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


def _package_of(path: Path, name: str) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _from_module(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` statement of a module of ``package`` reads."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _import_edges(path: Path, name: str, modules: set[str]) -> set[str]:
    """Every module of the package that ``path`` imports, wherever the import
    statement stands (function bodies and ``if TYPE_CHECKING:`` blocks included: a
    reader follows a type-only import too), with the packages whose ``__init__``
    that import runs."""
    package = _package_of(path, name)
    targets: set[str] = set()
    for node in _import_statements(path, include_type_checking=True):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        module = _from_module(node, package)
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


def test_the_import_graph_counts_type_only_and_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "engine.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from mettl_async.export.base import ExportFormat\n"
        "else:\n"
        "    import mettl_async._errors\n"
        "def later() -> None:\n"
        "    from mettl_async import _paging\n",
        encoding="utf-8",
    )
    modules = {_module_name(path) for path in PACKAGE.rglob("*.py")}
    edges = _import_edges(module, "mettl_async.export.engine", modules)
    assert edges == {"mettl_async.export.base", "mettl_async._errors", "mettl_async._paging"}


def test_the_package_import_graph_has_no_cycle() -> None:
    """No module imports, even lazily inside a function or only for its types (under
    ``if TYPE_CHECKING:``), a module that imports it back."""
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


#: Imports of a private name that stay while the module they read is being rewritten.
PRIVATE_IMPORTS_KNOWN = {"mettl_async.cli.webhooks: mettl_async.webhooks._URL_FIELDS"}


def test_no_module_imports_a_private_name_of_another() -> None:
    """What a module needs of another is public within the package: no leading underscore.

    (A private module, such as ``mettl_async._client``, is the package's own: importing
    it is not reaching into another module's insides.)
    """
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    offenders: set[str] = set()
    for name, path in paths.items():
        for node in _import_statements(path, include_type_checking=True):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = _from_module(node, _package_of(path, name))
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{module}.{alias.name}" not in paths:
                    offenders.add(f"{name}: {module}.{alias.name}")
    assert offenders <= PRIVATE_IMPORTS_KNOWN


def test_the_export_and_the_sync_share_the_walk_not_each_other() -> None:
    """Both walk the schedules with ``mettl_async._walk``; neither package imports the other."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    reaching = set()
    for name, path in paths.items():
        for own, other in (("export", "sync"), ("sync", "export")):
            if name.startswith(f"mettl_async.{own}"):
                edges = _import_edges(path, name, modules)
                reaching.update(
                    f"{name} -> {target}"
                    for target in edges
                    if target.startswith(f"mettl_async.{other}")
                )
    assert reaching == set()
    for engine in ("mettl_async.export.engine", "mettl_async.sync.engine"):
        assert "mettl_async._walk" in _import_edges(paths[engine], engine, modules)
