"""The layout holds: which package may import which (README "How the code is laid out").

Imports are read with ``ast``, never by importing: a rule broken in a module that is never
imported by the tests is still caught. Every import counts, also one made inside a function or
under ``TYPE_CHECKING``. Each failure names the file, the line and the offending import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Libraries that do I/O (or run the event loop): the pure parts must not import them.
IO_LIBRARIES = ("httpx", "httpcore", "aiohttp", "sqlite3", "sqlite_utils", "asyncio", "socket", "ssl", "selectors",
                "apscheduler", "subprocess", "http.client", "http.server", "urllib.request", "state")
# The pure parts: no clock, no network, no database. A pure module may import only pure poller
# modules, so what it imports is pure all the way down.
PURE = ("poller/__init__.py", "poller/errors.py", "poller/jsonpath.py", "poller/jsonio.py", "poller/gcpause.py",
        "poller/redact.py", "poller/config/", "poller/javadate/", "poller/events/", "poller/poll/detect.py",
        "poller/poll/detect_common.py", "poller/poll/records.py", "poller/deliver/signing.py",
        "poller/inbound/__init__.py", "poller/inbound/forms.py", "poller/inbound/cmxml.py",
        "poller/inbound/normalise.py", "poller/inbound/verify.py", "poller/inbound/pushed.py",
        # packages whose pure modules sit beside impure ones: their __init__ stays a docstring
        "poller/poll/__init__.py", "poller/deliver/__init__.py")
# (what, may not import, why)
FORBIDDEN = (
    ("state/", "poller", "state/ is the storage layer below poller: it never imports poller"),
    ("poller/poll/", "poller.deliver", "poll/ and deliver/ meet only in the outbox"),
    ("poller/deliver/", "poller.poll", "poll/ and deliver/ meet only in the outbox"),
    ("poller/", "poller.daemon", "only the CLI starts the daemon: nothing below daemon/ imports it"),
    ("poller/", "poller.cli", "nothing below the CLI imports it"),
)
# who may, all the same: the package itself, and the entry points above it
ALLOWED = {"poller.daemon": ("poller/daemon/", "poller/cli/"), "poller.cli": ("poller/cli/", "poller/__main__.py")}


def modules(root: Path) -> Iterator[str]:
    """Every Python file of poller/ and state/, as a path relative to ``root`` with '/'."""
    for top in ("poller", "state"):
        for path in sorted((root / top).rglob("*.py")):
            yield path.relative_to(root).as_posix()


def module_file(root: Path, name: str) -> str | None:
    """The file of the module ``name`` (``poller.poll.detect`` -> ``poller/poll/detect.py``), if any."""
    base = name.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def imports(root: Path, rel: str) -> Iterator[tuple[int, str]]:
    """(line, module name) of each import in ``rel``; ``from a import b`` yields ``a`` and, when
    ``b`` is a module, ``a.b``."""
    package = rel.rsplit("/", 1)[0].replace("/", ".")
    tree = ast.parse((root / rel).read_text(encoding="utf-8"), rel)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{parent}.{node.module}" if node.module else parent
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                if module_file(root, f"{base}.{alias.name}") is not None:
                    yield node.lineno, f"{base}.{alias.name}"


def _is_pure(rel: str) -> bool:
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in PURE)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _files_of(root: Path, name: str) -> list[str]:
    """The files that importing ``name`` runs: the module and every package above it."""
    parts = name.split(".")
    found = [module_file(root, ".".join(parts[:i])) for i in range(1, len(parts) + 1)]
    return [f for f in found if f is not None]


def violations(root: Path) -> list[str]:
    problems = []
    for rel in modules(root):
        for line, name in imports(root, rel):
            where = f"{rel}:{line}: imports {name}"
            if _is_pure(rel):
                library = next((lib for lib in IO_LIBRARIES if _within(name, lib)), None)
                if library is not None:
                    problems.append(f"{where}: {rel} is pure and may not import {library} (it does I/O)")
                for target in _files_of(root, name) if _within(name, "poller") else ():
                    if not _is_pure(target):
                        problems.append(f"{where}: {rel} is pure and may import only pure modules; "
                                        f"{target} is not")
            for scope, prefix, why in FORBIDDEN:
                allowed = ALLOWED.get(prefix, ())
                if rel.startswith(scope) and _within(name, prefix) and not any(rel.startswith(a) for a in allowed):
                    problems.append(f"{where}: {why}")
    return sorted(set(problems))


def test_the_tree_keeps_every_rule() -> None:
    found = violations(ROOT)
    assert not found, "\n".join(found)


def test_the_rules_see_the_modules() -> None:
    """Guard against a rule that passes because it reads nothing."""
    files = list(modules(ROOT))
    assert "poller/poll/detect.py" in files and "state/store.py" in files
    pure = [f for f in files if _is_pure(f)]
    assert len(pure) >= 20 and "poller/config/load.py" in pure and "poller/poll/engine.py" not in pure
    assert ("poller.config", "poller/config/__init__.py") in [(n, module_file(ROOT, n)) for _, n in
                                                             imports(ROOT, "poller/poll/engine.py")]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel in ("poller/__init__.py", "poller/poll/__init__.py", "poller/deliver/__init__.py",
                "poller/daemon/__init__.py", "poller/cli/__init__.py", "state/__init__.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("", encoding="utf-8")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("files", "expected"), [
    ({"poller/poll/detect.py": "import json\nimport httpx\n"},
     "poller/poll/detect.py:2: imports httpx: poller/poll/detect.py is pure and may not import httpx (it does I/O)"),
    ({"poller/config/load.py": "def f():\n    from sqlite_utils import Database\n"},
     "poller/config/load.py:2: imports sqlite_utils: poller/config/load.py is pure and may not import sqlite_utils (it does I/O)"),
    ({"poller/events/notify.py": "from poller.poll import engine\n", "poller/poll/engine.py": "import httpx\n"},
     "poller/events/notify.py:1: imports poller.poll.engine: poller/events/notify.py is pure and may import only "
     "pure modules; poller/poll/engine.py is not"),
    ({"state/store.py": "from poller.errors import PollerError\n", "poller/errors.py": ""},
     "state/store.py:1: imports poller.errors: state/ is the storage layer below poller: it never imports poller"),
    ({"poller/poll/engine.py": "from poller.deliver.sender import deliver_due\n", "poller/deliver/sender.py": ""},
     "poller/poll/engine.py:1: imports poller.deliver.sender: poll/ and deliver/ meet only in the outbox"),
    ({"poller/deliver/sender.py": "from ..poll import fetch\n", "poller/poll/fetch.py": ""},
     "poller/deliver/sender.py:1: imports poller.poll: poll/ and deliver/ meet only in the outbox"),
    ({"poller/poll/runner.py": "from poller.daemon import schedule\n", "poller/daemon/schedule.py": ""},
     "poller/poll/runner.py:1: imports poller.daemon: only the CLI starts the daemon: nothing below daemon/ imports it"),
    ({"poller/daemon/daemon.py": "import poller.cli\n"},
     "poller/daemon/daemon.py:1: imports poller.cli: nothing below the CLI imports it"),
])
def test_each_rule_fails_with_the_offending_import_named(tmp_path: Path, files: dict[str, str],
                                                         expected: str) -> None:
    assert expected in violations(_tree(tmp_path, files))


def test_the_entry_points_may_import_what_is_below_them(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"poller/cli/run.py": "from poller.daemon import daemon\n", "poller/daemon/daemon.py": "",
                            "poller/__main__.py": "from poller.cli import main\n",
                            "poller/daemon/schedule.py": "import apscheduler\nfrom poller.poll import engine\n",
                            "poller/poll/engine.py": "import httpx\nimport state\n"})
    assert violations(root) == []
