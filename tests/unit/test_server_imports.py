"""No module of pixlive imports a server's internals: uvicorn's protocol implementations,
its middleware, its Server, or any underscore name of uvicorn, websockets or httptools."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "pixlive"
PRIVATE_MODULES = ("uvicorn.protocols", "uvicorn.middleware", "uvicorn.server", "uvicorn._")
LIBRARIES = ("uvicorn", "websockets", "httptools")


def _imports(path: Path) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.extend((node.module, alias.name) for alias in node.names)
    return found


def test_no_module_imports_server_internals() -> None:
    offences = []
    for path in sorted(SRC.rglob("*.py")):
        for module, name in _imports(path):
            if not module.startswith(LIBRARIES):
                continue
            private_name = name is not None and name.startswith("_")
            private_part = any(part.startswith("_") for part in module.split("."))
            if module.startswith(PRIVATE_MODULES) or private_name or private_part:
                offences.append(f"{path.relative_to(SRC)}: {module} {name or ''}")
    assert offences == []

