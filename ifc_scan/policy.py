"""The policy file: package default, overridden key by key by a user's YAML file, validated (pydantic)
so that a mistake is an error naming the key, never a crash later or a silently wrong figure."""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ifc_scan.yaml_budget import load_user_yaml

DEFAULT_POLICY = yaml.safe_load(resources.files("ifc_scan").joinpath("policy.yaml").read_text())

Hours = Field(default=None, gt=0)


class _Sla(BaseModel):
    model_config = ConfigDict(extra="forbid")
    CRITICAL: float | None = Hours
    HIGH: float | None = Hours
    MEDIUM: float | None = Hours
    LOW: float | None = Hours
    UNKNOWN: float | None = Hours


class _Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    critical_in_prod: int = Field(ge=0)
    coverage_pct: float = Field(ge=0, le=100)
    mttr_critical_hours: float = Field(gt=0)
    mttr_high_hours: float = Field(gt=0)


class _Escalation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    CRITICAL: float = Field(gt=0)
    HIGH: float = Field(gt=0)


class _Exploitation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epss_threshold: float = Field(ge=0, le=1)     # on the EPSS probability, not the percentile
    kev_target_open: int = Field(ge=0)


class _Email(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: list[str] = []
    sender: str | None = Field(default=None, alias="from")
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    starttls: bool = True
    username: str | None = None          # the password only from IFC_SCAN_SMTP_PASSWORD
    attach_report: bool = True


class _Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: _Email | None = None
    report_url: str | None = None        # where published reports are served: linked from messages
    fresh_days: int = Field(default=8, gt=0)


class _Gate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    block_kev: bool = False              # `ifc-scan gate` blocks KEV-listed findings whatever their severity


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    sla_hours: _Sla
    blocking_severity: str
    max_exception_days_critical: int = Field(gt=0)
    stale_image_days: int = Field(gt=0)
    scan_gap_hours: float = Field(gt=0)
    expiring_soon_days: int = Field(ge=0)
    week_start: str | None = None
    targets: _Targets
    escalation_hours: _Escalation | None = None
    exploitation: _Exploitation          # the package default always has it; a user's file overrides its keys
    delivery: _Delivery | None = None    # webhook URLs and keys only from the environment (deliver.py)
    gate: _Gate | None = None
    source: str


def _validate(policy: dict, where: str) -> None:
    try:
        _Policy.model_validate(policy, strict=False)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise ValueError(f"policy {where}: {problems}") from None


def gate_blocks_kev(policy: dict) -> bool:
    """The policy's `gate: block_kev` (default false)."""
    return bool((policy.get("gate") or {}).get("block_kev", False))


def load_policy(path: str | Path | None = None) -> dict:
    policy = copy.deepcopy(DEFAULT_POLICY)
    path = path or os.environ.get("IFC_SCAN_POLICY")
    if path:
        user = load_user_yaml(Path(path).read_text(), f"policy file {path}")
        for key, value in user.items():
            if isinstance(value, dict) and isinstance(policy.get(key), dict):
                policy[key].update(value)
            else:
                policy[key] = value
        policy["source"] = str(path)
    else:
        policy["source"] = "package default (ifc_scan/policy.yaml)"
    if isinstance(policy.get("sla_hours"), dict):
        policy["sla_hours"] = {str(k).upper(): v for k, v in policy["sla_hours"].items()}
    if policy.get("week_start") is not None:
        policy["week_start"] = str(policy["week_start"])
    _validate(policy, f"file {path}" if path else "default")
    policy["sla_hours"] = {k: (None if v is None else float(v)) for k, v in policy["sla_hours"].items()}
    policy["sla_hours"].setdefault("UNKNOWN", None)
    return policy
