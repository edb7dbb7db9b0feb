"""Paths and settings, from environment variables with project-local defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Settings:
    landing: str
    warehouse: str
    reports: str
    policy: str | None
    github_repo: str = ""
    github_api: str = "https://api.github.com"
    github_token_env: str = "GITHUB_TOKEN"
    collector_state: str = "data/collector/github.json"
    parquet_dir: str = ""        # set: the warehouse is also published as Parquet and KPIs read from it

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(landing=os.environ.get("IFC_SCAN_LANDING", "data/landing"),
                   warehouse=os.environ.get("IFC_SCAN_WAREHOUSE", "data/ifc_scan.duckdb"),
                   reports=os.environ.get("IFC_SCAN_REPORTS", "reports"),
                   policy=os.environ.get("IFC_SCAN_POLICY") or None,
                   github_repo=os.environ.get("IFC_SCAN_GITHUB_REPO", ""),
                   github_api=os.environ.get("IFC_SCAN_GITHUB_API", "https://api.github.com"),
                   github_token_env=os.environ.get("IFC_SCAN_GITHUB_TOKEN_ENV", "GITHUB_TOKEN"),
                   collector_state=os.environ.get("IFC_SCAN_COLLECTOR_STATE", "data/collector/github.json"),
                   parquet_dir=os.environ.get("IFC_SCAN_PARQUET_DIR", ""))
