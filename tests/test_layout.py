"""Architecture rules that code review alone would let slip."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jobskills", "indexer", "retriever", "trainer", "synth")
# what each package may import from the others
ALLOWED = {
    "jobskills": set(),
    "indexer": {"jobskills"},
    "retriever": {"jobskills", "indexer"},
    "trainer": {"jobskills", "indexer"},
    "synth": {"jobskills", "indexer"},
}


#: the console script mounts every package's commands by module name (importlib, so that core does not import
#: its dependents at import time); it is the one module allowed to reach all packages
ENTRY_POINTS = {Path("jobskills/cli.py"): set(PACKAGES)}
_IMPORT_FUNCS = {"import_module", "__import__"}


def _strings(node: ast.AST | None) -> list[str] | None:
    """The strings of a str constant or of a tuple / list of them; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_strings(e) for e in node.elts]
        if all(i is not None and len(i) == 1 for i in items):
            return [i[0] for i in items]  # type: ignore[index]
    return None


def _imports(source: str) -> set[str]:
    """Top-level modules a source imports: import statements, and importlib.import_module / __import__ calls
    whose argument is a string, a loop variable over literal strings, or a module-level constant of them.
    A dynamic import that cannot be resolved fails the check: what the test cannot see, it cannot allow."""
    tree = ast.parse(source)
    constants: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values = _strings(node.value)
            if values is not None:
                constants[node.targets[0].id] = values
    loops: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name):
            values = _strings(node.iter)
            if values is None and isinstance(node.iter, ast.Name):
                values = constants.get(node.iter.id)
            if values is not None:
                loops[node.target.id] = values
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and (getattr(node.func, "attr", None) in _IMPORT_FUNCS
                                             or getattr(node.func, "id", None) in _IMPORT_FUNCS):
            arg = node.args[0] if node.args else None
            names = _strings(arg)
            if names is None and isinstance(arg, ast.Name):
                names = loops.get(arg.id, constants.get(arg.id))
            assert names is not None, f"line {node.lineno}: a dynamic import the layout test cannot resolve"
            found |= {n.split(".")[0] for n in names}
    return found


def test_the_import_check_sees_importlib_imports():
    assert _imports("import importlib\nimportlib.import_module('retriever.cli')") == {"importlib", "retriever"}
    assert _imports("from importlib import import_module\nMODS = ('synth.run', 'trainer')\n"
                    "for m in MODS:\n    import_module(m)") == {"importlib", "synth", "trainer"}
    assert _imports("x = __import__('indexer.build')") == {"indexer"}
    with pytest.raises(AssertionError, match="dynamic import"):
        _imports("import importlib\nimportlib.import_module(input())")
    # the real entry point: its command modules are seen
    assert _imports((ROOT / "jobskills" / "cli.py").read_text(encoding="utf-8")) >= {"indexer", "retriever", "trainer", "synth"}


def test_imports_point_one_way():
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT)
            ours = _imports(path.read_text(encoding="utf-8")) & set(PACKAGES) - {pkg}
            allowed = ALLOWED[pkg] | ENTRY_POINTS.get(rel, set())
            assert ours <= allowed, f"{rel} imports {ours - allowed}"


def _softmax_uses(source: str) -> list[int]:
    """Lines that call or import a softmax (softmax, log_softmax, nn.Softmax, ..., under any alias); words in
    docstrings, comments and help texts do not count."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None) or ""
            if "softmax" in name.lower():
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and any("softmax" in a.name.lower() for a in node.names):
            lines.append(node.lineno)
    return lines


def test_the_softmax_check_reads_code_not_words():
    assert _softmax_uses("import torch.nn.functional as F\ny = F.softmax(x, -1)") == [2]
    assert _softmax_uses("from torch.nn.functional import log_softmax as ls\n") == [1]
    assert _softmax_uses("layer = torch.nn.Softmax(dim=1)") == [1]
    assert _softmax_uses('"""Softmax temperature of the loss."""\nT = 0.05  # softmax') == []
    assert _softmax_uses((ROOT / "jobskills" / "scoring.py").read_text(encoding="utf-8"))  # the one home has it


def test_scoring_math_lives_in_one_module():
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if path.name == "scoring.py":
                continue
            uses = _softmax_uses(path.read_text(encoding="utf-8"))
            assert not uses, f"{path.relative_to(ROOT)}:{uses[0]} restates the ConTeXT softmax (use jobskills.scoring)"


def test_library_code_does_not_print():
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
            assert not calls, f"{path.relative_to(ROOT)} calls print()"


def test_compose_file_defines_server_and_cluster():
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = data["services"]
    q = services["qdrant"]
    assert q["image"].startswith("qdrant/qdrant:v") and "latest" not in q["image"]
    assert any(p.endswith("6333:6333") for p in q["ports"]) and any(v.startswith("qdrant-data:") for v in q["volumes"])
    assert "healthcheck" in q
    nodes = [s for s in services.values() if "cluster" in s.get("profiles", [])]
    assert len(nodes) == 3
    assert all(n["environment"]["QDRANT__CLUSTER__ENABLED"] == "true" for n in nodes)
    assert sum("--bootstrap" in n["command"] for n in nodes) == 2
    assert set(data["volumes"]) >= {"qdrant-data", "qdrant-node0", "qdrant-node1", "qdrant-node2", "jobskills-home"}
    api = services["jobskills"]
    assert api["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert api["depends_on"]["qdrant"]["condition"] == "service_healthy" and any(p.endswith("8000:8000") for p in api["ports"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "torch==2.13.0" in dockerfile and '"serve"' in dockerfile and "HEALTHCHECK" in dockerfile


def test_esco_attribution_is_shipped():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "This service uses the ESCO classification of the European Commission." in readme
    assert (ROOT / "jobskills" / "data" / "esco" / "skills_en.csv.gz").is_file()
