"""The import contract of the layers (BRIEF: dependencies point inwards), read from the
source: every `import` of a pixlive module, at any depth of a module (a function's lazy
import counts; one under `if TYPE_CHECKING:` too).

- domain/ imports nothing of ours outside domain/;
- services/ import only domain/ and services/;
- adapters/ implement the services' ports and import no use case, no entry point;
- no cycle between modules, nor between the packages directly under pixlive.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "pixlive"

# What adapters may use of the service layer: its ports (services/ports.py and each
# feature's *_ports.py), the records they carry and its errors.
SERVICE_CONTRACTS = {"pixlive.services.records", "pixlive.services.errors"}


def is_contract(module: str) -> bool:
    return module in SERVICE_CONTRACTS or module.rsplit(".", 1)[-1].endswith(("port", "ports"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path for path in ROOT.rglob("*.py") if "migrations" not in path.parts
    }


def imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The pixlive modules `name` imports (a `from package import module` counts as the
    module)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pixlive"):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("pixlive"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in known else target


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imported(name, path, known)) - {name} for name, path in found.items()}


GRAPH = graph()


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(source_layer: str, allowed: Callable[[str], bool]) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in sorted(GRAPH.items())
        if layer(module) == source_layer
        for target in sorted(targets)
        if not allowed(target)
    ]


def test_the_graph_is_read() -> None:
    assert "pixlive.services.confirmation" in GRAPH
    assert "pixlive.domain.charge" in GRAPH["pixlive.services.confirmation"]
    assert "pixlive.services.ports" in GRAPH["pixlive.adapters.repository"] or (
        "pixlive.services.records" in GRAPH["pixlive.adapters.repository"]
    )


def test_the_domain_imports_only_the_domain() -> None:
    assert violations("domain", lambda t: layer(t) == "domain") == []


# Known departures, to be moved behind a port (a metrics observer handed in by the
# composition root); listed so that no new one comes in unseen.
KNOWN = {
    "pixlive.services.psp_charges imports pixlive.metrics",
    "pixlive.services.reconcile imports pixlive.metrics",
}


def test_the_services_import_only_the_domain_and_the_services() -> None:
    found = violations("services", lambda t: layer(t) in {"domain", "services"})
    assert set(found) - KNOWN == set()


def test_the_adapters_import_no_use_case_and_no_entry_point() -> None:
    def allowed(target: str) -> bool:
        if layer(target) == "services":
            return is_contract(target)
        return target == "pixlive" or layer(target) in {"domain", "adapters", "settings", "metrics"}

    assert violations("adapters", allowed) == []


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, if it has one (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_no_module_imports_itself_through_others() -> None:
    assert cycle(GRAPH) is None


def test_no_package_imports_itself_through_others() -> None:
    packages: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        if layer(module):
            packages.setdefault(layer(module), set()).update(
                layer(t) for t in targets if layer(t) and layer(t) != layer(module)
            )
    assert cycle(packages) is None


@pytest.mark.parametrize(
    ("edges", "found"),
    [({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]), ({"a": {"b"}, "b": set()}, None)],
)
def test_the_cycle_check_finds_a_cycle(edges: dict[str, set[str]], found: list[str] | None) -> None:
    assert cycle(edges) == found
