"""Architecture rules that code review alone would let slip."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jobskills", "indexer", "retriever", "trainer", "synth")
# what each package may import from the others
ALLOWED = {
    "jobskills": set(),
    "indexer": {"jobskills"},
    "retriever": {"jobskills", "indexer"},
    "trainer": {"jobskills", "indexer", "retriever"},
    "synth": {"jobskills", "indexer"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_imports_point_one_way():
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            ours = _imports(path) & set(PACKAGES) - {pkg}
            assert ours <= ALLOWED[pkg], f"{path.relative_to(ROOT)} imports {ours - ALLOWED[pkg]}"


def test_scoring_math_lives_in_one_module():
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if path.name == "scoring.py":
                continue
            text = path.read_text(encoding="utf-8")
            assert "softmax" not in text, f"{path.relative_to(ROOT)} restates the ConTeXT softmax"


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
    assert "6333:6333" in q["ports"] and any(v.startswith("qdrant-data:") for v in q["volumes"])
    assert "healthcheck" in q
    nodes = [s for s in services.values() if "cluster" in s.get("profiles", [])]
    assert len(nodes) == 3
    assert all(n["environment"]["QDRANT__CLUSTER__ENABLED"] == "true" for n in nodes)
    assert sum("--bootstrap" in n["command"] for n in nodes) == 2
    assert set(data["volumes"]) >= {"qdrant-data", "qdrant-node0", "qdrant-node1", "qdrant-node2", "jobskills-home"}
    api = services["jobskills"]
    assert api["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert api["depends_on"]["qdrant"]["condition"] == "service_healthy" and "8000:8000" in api["ports"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "torch==2.13.0" in dockerfile and '"serve"' in dockerfile and "HEALTHCHECK" in dockerfile


def test_esco_attribution_is_shipped():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "This service uses the ESCO classification of the European Commission." in readme
    assert (ROOT / "jobskills" / "data" / "esco" / "skills_en.csv.gz").is_file()
