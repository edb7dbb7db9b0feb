"""The one settings model: every setting, the environment variable that sets it, and its default.

The CLI reads it with `Settings.from_env()`; the Dagster resource (ifc_scan/defs/resources.py) declares
the same fields with these defaults and is configured from the same table with `dg.EnvVar`, so the two
can never disagree (test_settings checks that they have the same fields and defaults).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields


def setting(env: str, default: str) -> str:
    """A setting: the environment variable that sets it, and its default (a dataclass field; typed as its value)."""
    return field(default=default, metadata={"env": env})


@dataclass
class Settings:
    """Every ifc_scan setting, the environment variable that sets it, and its default."""
    landing: str = setting("IFC_SCAN_LANDING", "data/landing")
    warehouse: str = setting("IFC_SCAN_WAREHOUSE", "data/ifc_scan.duckdb")
    reports: str = setting("IFC_SCAN_REPORTS", "reports")
    policy: str = setting("IFC_SCAN_POLICY", "")
    github_repo: str = setting("IFC_SCAN_GITHUB_REPO", "")
    github_api: str = setting("IFC_SCAN_GITHUB_API", "https://api.github.com")
    github_token_env: str = setting("IFC_SCAN_GITHUB_TOKEN_ENV", "GITHUB_TOKEN")
    collector_state: str = setting("IFC_SCAN_COLLECTOR_STATE", "data/collector/github.json")
    # exception-file history (docs/exception-governance.md): a GitHub repository or a local clone
    exceptions_repo: str = setting("IFC_SCAN_EXCEPTIONS_REPO", "")
    exceptions_git: str = setting("IFC_SCAN_EXCEPTIONS_GIT", "")
    exceptions_files: str = setting("IFC_SCAN_EXCEPTIONS_FILES", ".trivyignore=_global")   # PATH=SCOPE, comma-separated
    exceptions_branch: str = setting("IFC_SCAN_EXCEPTIONS_BRANCH", "")
    # ticket evidence (docs/tickets-and-delivery.md): GitHub issues by label or search query
    tickets_repo: str = setting("IFC_SCAN_TICKETS_REPO", "")
    tickets_label: str = setting("IFC_SCAN_TICKETS_LABEL", "security")
    tickets_query: str = setting("IFC_SCAN_TICKETS_QUERY", "")
    # vulnerability intelligence (issue 31): the official feeds, or a mirror's https URLs
    kev_url: str = setting("IFC_SCAN_KEV_URL",
                           "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json")
    epss_url: str = setting("IFC_SCAN_EPSS_URL", "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz")
    parquet_dir: str = setting("IFC_SCAN_PARQUET_DIR", "")   # set: the warehouse is also published as Parquet
    signing_key: str = setting("IFC_SCAN_SIGNING_KEY", "data/signing/ifc-scan-ed25519.pem")   # outside reports/
    # many-hosts profile (docs/deploy.md): the warehouse's tables as Iceberg tables, ifc_scan/warehouse/iceberg.py.
    # Catalog: a SQLAlchemy URI (postgresql+psycopg2://user@host:port/db; the password from PGPASSWORD), or
    # sqlite:///path for processes of one host. Data files: s3://bucket/prefix or a shared folder.
    iceberg_catalog: str = setting("IFC_SCAN_ICEBERG_CATALOG", "")
    iceberg_warehouse: str = setting("IFC_SCAN_ICEBERG_WAREHOUSE", "")
    iceberg_namespace: str = setting("IFC_SCAN_ICEBERG_NAMESPACE", "ifc_scan")
    # S3-compatible storage; its keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (never a setting)
    s3_endpoint: str = setting("IFC_SCAN_S3_ENDPOINT", "")
    s3_region: str = setting("IFC_SCAN_S3_REGION", "us-east-1")
    # DuckDB's memory cap while a connection works (it spills to disk past it); lifted for the checkpoint at
    # close (ifc_scan/warehouse/db.py cap_memory)
    duckdb_memory: str = setting("IFC_SCAN_DUCKDB_MEMORY", "1GB")

    @classmethod
    def from_env(cls) -> "Settings":
        """Each setting from its environment variable when set, else its default."""
        return cls(**{name: os.environ.get(var) or default for name, (var, default) in ENV.items()})


# the settings table: field -> (environment variable, default), read from the class above
ENV: dict[str, tuple[str, str]] = {f.name: (f.metadata["env"], f.default) for f in fields(Settings)}
