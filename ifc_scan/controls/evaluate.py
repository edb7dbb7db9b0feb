"""Weekly status of each control of the catalog: pass / fail / partial / no-data.

A rule is a list of conditions, each True, False or None (no data): all None -> no-data, any False ->
fail, some None -> partial, else pass.
"""

from __future__ import annotations

from importlib import resources

import yaml

CATALOG = yaml.safe_load(resources.files("ifc_scan.controls").joinpath("catalog.yaml").read_text())


def _status(conds: list) -> str:
    if all(c is None for c in conds):
        return "no-data"
    if any(c is False for c in conds):
        return "fail"
    if any(c is None for c in conds):
        return "partial"
    return "pass"


def _eq100(x):
    return None if x is None else x == 100.0


def _deploys_ok(deploys: list[dict], key: str):
    return None if not deploys else all(d[key] for d in deploys)


def evaluate_controls(k: dict, deploys: list[dict], reproducible: bool | None) -> list[dict]:
    cov_b, cov_n = _eq100(k["coverage"]["build_gate"]["pct"]), _eq100(k["coverage"]["nightly"]["pct"])
    crit_overdue = k["sla"]["CRITICAL"]["open_overdue"]
    no_overdue = all((k["sla"][s]["open_overdue"] or 0) == 0 for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW"))
    exc_ok = k["exceptions"]["invalid"] == 0 and k["exceptions"]["expired_listed"] == 0
    sla_h = k["policy"]["sla_hours"]
    mttr_ok = [None if k["mttr_hours"][s]["n"] == 0 else k["mttr_hours"][s]["mean"] <= sla_h[s]
               for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW")]
    mttr_cond = None if all(m is None for m in mttr_ok) else all(m is not False for m in mttr_ok)
    verify_logged = any(d["verified_before"] for d in deploys)
    rules = {
        "a06": [cov_b, cov_n, crit_overdue == 0],
        "a03_2025": [cov_b, cov_n, crit_overdue == 0, _deploys_ok(deploys, "scanned_before")],
        "a08": [_deploys_ok(deploys, "scanned_before")] + ([_deploys_ok(deploys, "verified_before")] if verify_logged else []),
        "iso_8_8": [cov_b, cov_n, no_overdue, exc_ok],
        "change_gate": [None if not deploys else all(not d["critical_unexcepted_before"] for d in deploys)],
        "reproducible": [reproducible],
        "cc7_1": [cov_n, cov_b],
        "cc6_8": [None if not deploys else all(d["image_known"] and d["scanned_before"] for d in deploys)],
        "nist": [cov_b, cov_n, mttr_cond],
        "cis": [cov_b, cov_n, k["cadence"]["lineages_with_gaps"] == 0],
    }
    out = []
    for c in CATALOG["controls"]:
        strength = c["strength"]
        if c["rule"] == "a08":
            strength = "P" if verify_logged else "W"
        out.append({"framework": c["framework"], "edition": c["edition"], "id": c["id"], "policy_id": c["policy_id"],
                    "strength": strength, "status": _status(rules[c["rule"]]), "evidence": c["evidence"],
                    "intent": c["intent"], "limitation": c.get("limitation") if strength != "P" else None})
    return out
