"""What `pip install .` brings and what the locks pin: every library the runtime imports is declared, the core
stays free of the UI and emulator libraries, and every declared requirement is pinned in its lock."""

from __future__ import annotations

import ast
import functools
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_ROOT / "confluence_pipeline"
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PROJECT_NAME = canonicalize_name(PROJECT["name"])
# Subpackages only the container image runs (the HTTP API service): they may also use the `server` extra.
SERVER_SUBPACKAGES = frozenset({"http_api"})
# The platform `make lock` resolves for (python:3.11-slim on x86_64), to evaluate requirement markers.
LOCK_TARGET = {
    "python_version": "3.11",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
LOCKS = {"image.lock": ("server",), "dev.lock": ("dev",)}


def requirements_of(*extras: str) -> list[Requirement]:
    """The project's requirements with these extras: the core ones first, self-references (`pkg[a,b]`) expanded."""
    found = [Requirement(text) for text in PROJECT["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in PROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == PROJECT_NAME:
                todo.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


def names(requirements: Iterable[Requirement]) -> set[NormalizedName]:
    return {canonicalize_name(requirement.name) for requirement in requirements}


def imports(package_dir: Path) -> Iterator[tuple[Path, str]]:
    """(file relative to the package, top-level module) for every absolute import, nested ones included."""
    for path in sorted(package_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                yield path.relative_to(package_dir), module.partition(".")[0]


@functools.cache
def module_distributions() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


def providers(module: str) -> set[NormalizedName]:
    return {canonicalize_name(dist) for dist in module_distributions().get(module, [])}


def undeclared_imports(
    package_dir: Path, core: set[NormalizedName], server: set[NormalizedName]
) -> list[tuple[str, str]]:
    """(file, module) for every third-party import that no distribution declared for that part provides."""
    found = []
    for path, module in imports(package_dir):
        if module in sys.stdlib_module_names or module == package_dir.name:
            continue
        allowed = server if len(path.parts) > 1 and path.parts[0] in SERVER_SUBPACKAGES else core
        if not providers(module) & allowed:
            found.append((path.as_posix(), module))
    return found


def _applies(requirement: Requirement, extra: str, environment: Mapping[str, str] | None = None) -> bool:
    if requirement.marker is None:
        return True
    return requirement.marker.evaluate({**(environment or {}), "extra": extra})


def dependency_closure(requirements: Iterable[Requirement]) -> set[NormalizedName]:
    """Every distribution these requirements install here: `requires()` walked recursively, markers evaluated for
    this interpreter and platform, a dependency's extras followed only where a requirement asks for them."""
    todo = [requirement for requirement in requirements if _applies(requirement, "")]
    done: set[tuple[NormalizedName, str]] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) in done:
                continue
            done.add((name, extra))
            for text in metadata.requires(name) or []:
                dependency = Requirement(text)
                if _applies(dependency, extra):
                    todo.append(dependency)
    return {name for name, _ in done}


def read_lock(path: Path) -> dict[NormalizedName, str]:
    """name → pinned version of a `uv pip compile` output (continuation lines, hashes and comments)."""
    pins = {}
    for line in path.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement = Requirement(line.partition(" --hash")[0].strip())
        (specifier,) = requirement.specifier  # exactly one clause, and it must be an exact pin
        assert specifier.operator == "==", f"{path.name}: {line!r} is not pinned exactly"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


# --- imports are declared ---------------------------------------------------------------------------------


def test_every_library_the_runtime_imports_is_declared() -> None:
    core, server = names(requirements_of()), names(requirements_of("server"))

    undeclared = undeclared_imports(PACKAGE_DIR, core, server)

    assert undeclared == [], "declare in pyproject.toml the distribution behind each of these imports: " + str(
        [(path, module, sorted(providers(module))) for path, module in undeclared]
    )
    # The scan does see the package's imports (so an empty list above means something).
    assert {"dagster", "httpx", "pydantic", "tenacity", "certifi"} <= {module for _, module in imports(PACKAGE_DIR)}


@pytest.mark.parametrize(
    ("path", "source", "flagged"),
    [
        ("clients/client.py", "import httpx\nimport os\nfrom . import errors\nfrom confluence_pipeline import x\n", []),
        ("clients/client.py", "import yaml.constructor\n", []),
        ("clients/client.py", "import lark\n", ["lark"]),
        ("clients/client.py", "def parse():\n    from graphql import parse\n", ["graphql"]),
        ("clients/client.py", "from starlette.applications import Starlette\n", ["starlette"]),
        ("clients/client.py", "import requests\n", ["requests"]),  # installed only because dagster needs it
        ("clients/client.py", "import no_such_library_anywhere\n", ["no_such_library_anywhere"]),
        ("http_api/app.py", "from starlette.applications import Starlette\nimport uvicorn\n", []),
        ("http_api/app.py", "import lark\n", ["lark"]),
        ("http_api.py", "import starlette\n", ["starlette"]),  # only the subpackage may use the server extra
    ],
)
def test_undeclared_imports_are_reported(tmp_path: Path, path: str, source: str, flagged: list[str]) -> None:
    package_dir = tmp_path / "confluence_pipeline"
    (package_dir / path).parent.mkdir(parents=True, exist_ok=True)
    (package_dir / path).write_text(source, encoding="utf-8")
    core, server = names(requirements_of()), names(requirements_of("server"))

    assert undeclared_imports(package_dir, core, server) == [(path, module) for module in flagged]


# --- the core stays lean ----------------------------------------------------------------------------------


def test_core_install_pulls_neither_the_ui_nor_the_emulator_libraries() -> None:
    closure = dependency_closure(requirements_of())

    assert {"dagster", "dagster-postgres", "httpx", "pydantic", "tenacity", "sqlalchemy"} <= closure
    assert not closure & {"graphql-core", "lark", "dagster-webserver", "dagster-graphql"}
    assert "pytest" not in closure  # dagster's own `test` extra is not requested


def test_server_extra_brings_the_ui_with_its_graphql_stack() -> None:
    # The walk follows transitive dependencies (dagster-graphql → graphene → graphql-core) and requested
    # extras (dagster-webserver → uvicorn[standard] → uvloop), so the lean-core test above can fail.
    closure = dependency_closure(requirements_of("server"))

    assert {"dagster-webserver", "graphene", "graphql-core", "uvloop"} <= closure
    assert "lark" not in closure


def test_runtime_never_imports_the_emulator_libraries() -> None:
    sandbox = names(Requirement(text) for text in PROJECT["optional-dependencies"]["sandbox"])
    sandbox_modules = {
        module
        for module, dists in module_distributions().items()
        if {canonicalize_name(dist) for dist in dists} & sandbox
    }
    assert {"graphql", "lark"} <= sandbox_modules

    imported = {module for _, module in imports(PACKAGE_DIR)}

    assert not imported & sandbox_modules


# --- the locks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lock", "extras"), LOCKS.items())
def test_every_declared_requirement_is_pinned_in_its_lock(lock: str, extras: tuple[str, ...]) -> None:
    pins = read_lock(REPO_ROOT / "requirements" / lock)
    problems = []
    for requirement in requirements_of(*extras):
        if not _applies(requirement, "", LOCK_TARGET):
            continue
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement} is not pinned")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} but the lock pins {version}")
    assert problems == [], f"requirements/{lock} is out of date with pyproject.toml (run `make lock`): {problems}"


def test_image_lock_holds_no_development_tools() -> None:
    pins = read_lock(REPO_ROOT / "requirements" / "image.lock")

    assert {"dagster-webserver", "dagster-postgres", "uvicorn"} <= pins.keys()
    assert not pins.keys() & {"lark", "pytest", "hypothesis", "ruff", "trustme"}


def test_tests_run_exactly_the_versions_the_image_ships() -> None:
    image = read_lock(REPO_ROOT / "requirements" / "image.lock")
    dev = read_lock(REPO_ROOT / "requirements" / "dev.lock")

    assert {name: (version, dev.get(name)) for name, version in image.items() if dev.get(name) != version} == {}
