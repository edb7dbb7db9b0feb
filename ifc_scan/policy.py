"""The policy file: package default, overridden key by key by a user's YAML file."""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path

import yaml

DEFAULT_POLICY = yaml.safe_load(resources.files("ifc_scan").joinpath("policy.yaml").read_text())


def load_policy(path: str | Path | None = None) -> dict:
    policy = copy.deepcopy(DEFAULT_POLICY)
    path = path or os.environ.get("IFC_SCAN_POLICY")
    if path:
        user = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(user, dict):
            raise ValueError(f"policy file {path} must be a YAML mapping")
        for key, value in user.items():
            if isinstance(value, dict) and isinstance(policy.get(key), dict):
                policy[key].update(value)
            else:
                policy[key] = value
        policy["source"] = str(path)
    else:
        policy["source"] = "package default (ifc_scan/policy.yaml)"
    policy["sla_hours"] = {k.upper(): (None if v is None else float(v)) for k, v in policy["sla_hours"].items()}
    policy["sla_hours"].setdefault("UNKNOWN", None)
    return policy
