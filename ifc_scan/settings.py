"""The one settings model: every setting, the environment variable that sets it, and its default.

The CLI reads it with `Settings.from_env()`; the Dagster resource (ifc_scan/defs/resources.py) is
configured from the same table with `dg.EnvVar`, so the two can never disagree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

# field -> (environment variable, default)
ENV: dict[str, tuple[str, str]] = {
    "landing": ("IFC_SCAN_LANDING", "data/landing"),
    "warehouse": ("IFC_SCAN_WAREHOUSE", "data/ifc_scan.duckdb"),
    "reports": ("IFC_SCAN_REPORTS", "reports"),
    "policy": ("IFC_SCAN_POLICY", ""),
    "github_repo": ("IFC_SCAN_GITHUB_REPO", ""),
    "github_api": ("IFC_SCAN_GITHUB_API", "https://api.github.com"),
    "github_token_env": ("IFC_SCAN_GITHUB_TOKEN_ENV", "GITHUB_TOKEN"),
    "collector_state": ("IFC_SCAN_COLLECTOR_STATE", "data/collector/github.json"),
    # exception-file history (docs/exception-governance.md): a GitHub repository or a local clone
    "exceptions_repo": ("IFC_SCAN_EXCEPTIONS_REPO", ""),
    "exceptions_git": ("IFC_SCAN_EXCEPTIONS_GIT", ""),
    "exceptions_files": ("IFC_SCAN_EXCEPTIONS_FILES", ".trivyignore=_global"),   # PATH=SCOPE, comma-separated
    "exceptions_branch": ("IFC_SCAN_EXCEPTIONS_BRANCH", ""),
    # ticket evidence (docs/tickets-and-delivery.md): GitHub issues by label or search query
    "tickets_repo": ("IFC_SCAN_TICKETS_REPO", ""),
    "tickets_label": ("IFC_SCAN_TICKETS_LABEL", "security"),
    "tickets_query": ("IFC_SCAN_TICKETS_QUERY", ""),
    "parquet_dir": ("IFC_SCAN_PARQUET_DIR", ""),   # set: the warehouse is also published as Parquet
    "signing_key": ("IFC_SCAN_SIGNING_KEY", "data/signing/ifc-scan-ed25519.pem"),   # outside reports/
}


@dataclass
class Settings:
    landing: str = ENV["landing"][1]
    warehouse: str = ENV["warehouse"][1]
    reports: str = ENV["reports"][1]
    policy: str = ""
    github_repo: str = ""
    github_api: str = ENV["github_api"][1]
    github_token_env: str = ENV["github_token_env"][1]
    collector_state: str = ENV["collector_state"][1]
    exceptions_repo: str = ""
    exceptions_git: str = ""
    exceptions_files: str = ENV["exceptions_files"][1]
    exceptions_branch: str = ""
    tickets_repo: str = ""
    tickets_label: str = ENV["tickets_label"][1]
    tickets_query: str = ""
    parquet_dir: str = ""
    signing_key: str = ENV["signing_key"][1]

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(**{f.name: os.environ.get(ENV[f.name][0]) or ENV[f.name][1] for f in fields(cls)})
