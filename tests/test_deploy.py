"""Issue 16.9: the compose file publishes nothing beyond loopback and runs Qdrant and the API with keys."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_every_published_port_binds_loopback_only():
    published = [(name, p) for name, svc in _compose()["services"].items() for p in svc.get("ports", [])]
    assert published, "the compose file should publish the API and Qdrant"
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_qdrant_and_the_api_need_keys():
    services = _compose()["services"]
    qdrants = [svc for name, svc in services.items() if name.startswith("qdrant")]
    assert len(qdrants) == 4
    for svc in qdrants:
        assert "QDRANT_API_KEY" in str(svc["environment"]["QDRANT__SERVICE__API_KEY"])
    env = services["jobskills"]["environment"]
    assert "QDRANT_API_KEY" in str(env["QDRANT_API_KEY"]) and "JOBSKILLS_API_KEY" in str(env["JOBSKILLS_API_KEY"])
    # ${VAR:?...}: compose refuses to start rather than run without a key
    assert ":?" in str(env["JOBSKILLS_API_KEY"]) and ":?" in str(env["QDRANT_API_KEY"])
