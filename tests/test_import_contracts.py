"""The architecture's import rules (docs/ARCHITECTURE.md), checked on the source itself.

Every ``import`` statement of every module is read with ``ast`` (also those inside functions, which
run later but still run), and followed through the project's own modules, so a rule cannot be broken
by going through a third module. A rule names the modules it binds and what they may never reach.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from conftest import REPO_ROOT

PACKAGES = ("stream", "train", "models")
OFFLINE = ("train", "models", "tensorflow", "tf_keras", "keras")

# (what the rule binds, what it may never import directly or through the project's modules, why)
CONTRACTS = [
    ("stream", OFFLINE, "what runs on the Pi never depends on the offline package or TensorFlow"),
    ("stream.stages", ("zmq",), "a stage has no sockets: tests and evaluation call it directly"),
    ("stream.dsp", ("zmq",), "DSP is pure functions and stages, no sockets"),
    ("stream.synth", ("zmq", "stream.daemons", "stream.dsp"), "the simulated person knows no transport or DSP"),
    ("stream.wire", ("stream.dsp", "scipy", "numba", "zmq", "stream.stages"),
     "the wire format knows no DSP, sockets or models: any subscriber can read it"),
    ("stream.recording", ("zmq", "stream.daemons"), "recordings are files, readable without the daemons"),
    ("stream.speak", ("zmq", "stream.daemons"),
     "the synthesiser, the audio outputs and the speech thread know no sockets: stream-speak wraps them"),
    ("stream.monitor", ("zmq", "stream.daemons"),
     "the monitor's traces, health and web page have no ZeroMQ side: stream.daemons.monitor feeds them"),
    ("stream.lsl", ("zmq", "stream.daemons", "stream.dsp", "stream.stages", "numba", "scipy"),
     "the LSL bridge and its clock map know no ZeroMQ and no DSP: stream.daemons.lsl feeds them decoded messages"),
    ("stream.adapt", ("zmq", "stream.daemons", "numba"),
     "adaptation is numpy and scipy on arrays: stream-calibrate and the classifier call it, no transport"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (REPO_ROOT / package).rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The project module an import names (``stream.wire.rates.parse_rate`` -> ``stream.wire.rates``)."""
    modules = project_modules()
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def direct_imports(module: str) -> frozenset[str]:
    path = project_modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(names)


@cache
def reachable(module: str) -> frozenset[str]:
    """Every name imported by ``module`` or by a project module it imports, transitively."""
    seen: set[str] = set()
    names: set[str] = set()
    pending = [module]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in direct_imports(current):
            names.add(name)
            target = _resolve(name)
            if target is not None:
                names.add(target)
                pending.append(target)
    return frozenset(names)


def _matches(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


def import_chain(module: str, forbidden: str) -> list[str]:
    """The shortest path of imports from ``module`` to ``forbidden`` (for the failure message)."""
    paths = {module: [module]}
    pending = [module]
    while pending:
        current = pending.pop(0)
        for name in sorted(direct_imports(current)):
            if _matches(name, forbidden):
                return paths[current] + [name]
            target = _resolve(name)
            if target is not None and target not in paths:
                paths[target] = paths[current] + [target]
                pending.append(target)
    return []


def bound_modules(scope: str) -> list[str]:
    return sorted(name for name in project_modules() if _matches(name, scope))


@pytest.mark.parametrize("scope, forbidden, why", CONTRACTS, ids=[contract[0] for contract in CONTRACTS])
def test_import_contract(scope, forbidden, why):
    modules = bound_modules(scope)
    assert modules, f"the rule for {scope} binds no module: was it renamed? (update CONTRACTS)"
    broken = []
    for module in modules:
        for name in forbidden:
            if any(_matches(imported, name) for imported in reachable(module)):
                broken.append(" -> ".join(import_chain(module, name)))
    assert not broken, f"{scope} must not import {', '.join(forbidden)} ({why}):\n  " + "\n  ".join(broken)


def test_the_checker_sees_through_modules_and_functions():
    """Known imports are found: zmq two modules away from a daemon, a function-level import of the
    soak (so the contracts above can fail)."""
    assert _resolve("stream.wire.rates.parse_rate") == "stream.wire.rates"
    assert any(_matches(name, "zmq") for name in reachable("stream.daemons.sink"))
    chain = import_chain("stream.tools.soak", "stream.synth.session")
    assert chain[0] == "stream.tools.soak" and chain[-1] == "stream.synth.session" and len(chain) >= 3
    assert "stream.synth.render" in reachable("stream.sources.synthetic")


def test_the_architecture_page_names_every_wing():
    page = (REPO_ROOT / "docs" / "ARCHITECTURE.md").read_text()
    wings = sorted({".".join(name.split(".")[:2]) for name in project_modules() if name.startswith("stream.")} - {"stream"})
    missing = [wing for wing in wings if f"stream/{wing.split('.')[1]}" not in page
               and not wing.endswith(("__main__",)) and (REPO_ROOT / wing.replace(".", "/")).is_dir()]
    assert not missing, f"docs/ARCHITECTURE.md does not describe {missing}"
    for scope, forbidden, _ in CONTRACTS:
        assert f"`{scope}`" in page, f"docs/ARCHITECTURE.md does not state the rule for {scope}"
