"""The committed deployment files parse and follow Dagster's instance schema (deploy/, dagster.yaml)."""

import shutil
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

ROOT = Path(__file__).resolve().parents[1]
INSTANCES = ["dagster.yaml", "deploy/postgres/dagster.yaml", "deploy/docker/dagster.yaml", "deploy/k8s/dagster.yaml"]


@pytest.mark.parametrize("path", INSTANCES)
def test_instance_files_follow_the_instance_schema(path, tmp_path, monkeypatch):
    for var in ("IFC_SCAN_PG_HOST", "IFC_SCAN_PG_PORT", "IFC_SCAN_PG_USER", "IFC_SCAN_PG_PASSWORD", "IFC_SCAN_PG_DB"):
        monkeypatch.setenv(var, "5432" if var.endswith("PORT") else "x")
    shutil.copy(ROOT / path, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1        # DuckDB's single writer in every profile
    if path != "dagster.yaml":
        assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_compose_k8s_and_workspace_files_parse():
    compose = yaml.safe_load((ROOT / "deploy/docker/docker-compose.yaml").read_text())
    assert {"postgres", "ifc-scan-code", "webserver", "daemon"} <= set(compose["services"])
    kinds = [d["kind"] for d in yaml.safe_load_all((ROOT / "deploy/k8s/ifc-scan.yaml").read_text())]
    assert kinds.count("Deployment") == 3 and "PersistentVolumeClaim" in kinds
    ws = yaml.safe_load((ROOT / "deploy/workspace-grpc.yaml").read_text())
    assert ws["load_from"][0]["grpc_server"]["location_name"] == "ifc_scan"
