"""The one settings model: every setting, the environment variable that sets it, and its default.

The CLI reads it with `Settings.from_env()`; the Dagster resource (ifc_scan/defs/resources.py) is
configured from the same table with `dg.EnvVar`, so the two can never disagree.
"""

from __future__ import annotations

import os
from dataclasses import field, fields, make_dataclass

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


def _from_env(cls) -> "Settings":
    """Each setting from its environment variable when set, else its default."""
    return cls(**{f.name: os.environ.get(ENV[f.name][0]) or ENV[f.name][1] for f in fields(cls)})


# one field per row of ENV, its default the table's (the Dagster resource is made from the same table)
Settings = make_dataclass("Settings", [(name, str, field(default=default)) for name, (_var, default) in ENV.items()],
                          namespace={"from_env": classmethod(_from_env)})
Settings.__module__ = __name__
