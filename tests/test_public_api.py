"""The public surface: one sorted __all__, and aiohttp only where it belongs."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import mettl_async
from mettl_async._session import user_agent

PACKAGE = Path(mettl_async.__file__).parent
#: Client-side modules that may import aiohttp at run time: only the session layer.
#: Server-side modules (the fake Mettl, the webhook receiver, the CLI that runs
#: them) are aiohttp.web applications by nature.
AIOHTTP_ALLOWED = {"_session.py", "webhooks.py", "cli/webhooks.py", "cli/entry.py"}
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


def _runtime_imports(path: Path) -> set[str]:
    """Top-level modules imported outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
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
        "_errors.py",
        "_registration.py",
        "_endpoints.py",
        "_listing.py",
        "_version.py",
    ):
        imports = _runtime_imports(PACKAGE / name)
        assert not imports & {"aiohttp", "yarl", "asyncio", "socket", "time", "os"}, name


def test_one_version_everywhere() -> None:
    """``__version__``, the User-Agent header and pyproject.toml agree."""
    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert mettl_async.__version__ == pyproject["project"]["version"]
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
