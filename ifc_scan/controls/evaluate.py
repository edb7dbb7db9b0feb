"""Weekly status of each control of the catalog: pass / fail / partial / no-data.

A rule is a list of conditions, each True, False or None (no data): all None -> no-data, any False ->
fail, some None -> partial, else pass.
"""

from __future__ import annotations

from importlib import resources

import yaml

from ifc_scan.kpis.targets import Targets, meets_coverage

CATALOG = yaml.safe_load(resources.files("ifc_scan.controls").joinpath("catalog.yaml").read_text())


def _status(conds: dict) -> str:
    values = list(conds.values())
    if all(c is None for c in values):
        return "no-data"
    if any(c is False for c in values):
        return "fail"
    if any(c is None for c in values):
        return "partial"
    return "pass"


def condition_requirements(cov_text: str) -> dict[str, tuple[str, ...]]:
    """Each control condition -> the policy requirements (kpis/requirements.py keys) it rests on: a failed
    condition is explained by these, so the report names the requirement once, not each framework's control."""
    return {
        f"build-gate coverage {cov_text}": ("build_gate_coverage",),
        f"nightly coverage {cov_text}": ("nightly_coverage",),
        "no CRITICAL finding overdue": ("no_open_overdue",),
        "no open finding overdue": ("no_open_overdue",),
        "every production deploy scanned (same digest) before it": ("deploys_gated",),
        "every production deploy verified (cosign) before it": ("deploys_gated",),
        "no production deploy with an unexcepted CRITICAL in its pre-deploy scan": ("deploys_gated",),
        "no production deploy of an unscanned or unknown digest": ("deploys_gated",),
        "exceptions valid (no invalid line, no expired entry still listed)":
            ("no_expired_exception_listed", "exception_lines_valid"),
        "exceptions in force approved by the policy's chain in time": ("exception_approvals",),
        "no CRITICAL exception without CTO sign-off": ("exception_approvals",),
        "HIGH/CRITICAL findings ticketed within the escalation window": ("tickets",),
        "no ticket closed while its finding is open": ("tickets",),
        REPRODUCIBLE: ("reproducible",),
        "MTTR within the SLA for every severity with fixes": ("mttr_critical", "mttr_high", "mttr_medium_low"),
        "no scan gap over the tolerance": ("scans_current",),
        KEV_DUE: ("known_exploited",), KEV_OPEN: ("known_exploited",), KEV_KNOWN: ("known_exploited",),
        EPSS_KNOWN: ("known_exploited",), CRIT_30D: ("no_open_overdue", "zero_critical_in_production"),
        HIGH_OVERDUE: ("no_open_overdue",),
    }


# the exploitation conditions (issue 31, D26)
KEV_DUE = "no KEV-listed finding open past its KEV due date"
KEV_OPEN = "KEV-listed findings open in production within the policy's target"
KEV_KNOWN = "a KEV catalog known at T"
EPSS_KNOWN = "an EPSS file known at T"
CRIT_30D = "no CRITICAL finding open over 30 days"
HIGH_OVERDUE = "no HIGH or CRITICAL finding overdue"


def _exploitation_rules(k: dict, nightly: dict) -> dict[str, dict]:
    """CISA BOD 22-01 and PCI DSS 4.0's rules. Without a KEV catalog known before T every condition of these is
    None (no data, never a pass); NIST's KEV condition is None too (it keeps its other conditions)."""
    ex = k.get("exploitation") or {}
    known = ex.get("kev_catalog") is not None
    due = {KEV_DUE: ex["kev_past_due"]["count"] == 0 if known else None}
    kev_open = {KEV_OPEN: ex["kev_open_in_prod"]["count"] <= ex["kev_open_in_prod"]["target"] if known else None}
    crit_30d = {CRIT_30D: k["open_backlog"]["CRITICAL"]["30-90d"] + k["open_backlog"]["CRITICAL"][">90d"] == 0}
    high = {HIGH_OVERDUE: all((k["sla"][s]["open_overdue"] or 0) == 0 for s in ("CRITICAL", "HIGH"))}

    def gated(conds: dict) -> dict:
        return conds if known else {name: None for name in conds}
    return {"bod_22_01": due,
            "pci_6_3_1": gated({KEV_KNOWN: True, EPSS_KNOWN: True if ex.get("epss_file") else None, **nightly}),
            "pci_6_3_3": gated({**crit_30d, **due}),
            "pci_11_3_1": gated({**nightly, **high, **kev_open}),
            "nist_kev": due}


REPRODUCIBLE = ("recomputed from the manifest's inputs by `ifc-scan verify` (run it; not checked at "
                "publication)")


def _deploys_ok(deploys: list[dict], key: str):
    return None if not deploys else all(d[key] for d in deploys)


def _coverage_text(targets: Targets) -> str:
    """The coverage target as the conditions name it ("100 %")."""
    return f"{targets.coverage_pct:g} %"


def _mttr_within_sla(k: dict) -> list[bool | None]:
    """Per severity (CRITICAL..LOW): the mean time to remediate within its SLA, None without a fix."""
    sla_h = k["policy"]["sla_hours"]
    return [None if k["mttr_hours"][s]["n"] == 0 else k["mttr_hours"][s]["mean"] <= sla_h[s]
            for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW")]


def _rules(k: dict, deploys: list[dict], targets: Targets, verify_logged: bool) -> dict[str, dict]:
    """Each rule of the catalog: {condition a reader understands: True | False | None (no data)}."""
    cov_b = meets_coverage(k["coverage"]["build_gate"]["pct"], targets)
    cov_n = meets_coverage(k["coverage"]["nightly"]["pct"], targets)
    cov_text = _coverage_text(targets)
    crit_overdue = k["sla"]["CRITICAL"]["open_overdue"]
    no_overdue = all((k["sla"][s]["open_overdue"] or 0) == 0 for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW"))
    exc_ok = k["exceptions"]["invalid"] == 0 and k["exceptions"]["expired_listed"] == 0
    mttr_ok = _mttr_within_sla(k)
    mttr_cond = None if all(m is None for m in mttr_ok) else all(m is not False for m in mttr_ok)
    # risk acceptance: judged only once exception history is collected (before that: no data, never a pass)
    appr = k.get("exception_approvals")
    judged = appr is not None and appr["evidence_collected"]
    chain = {"exceptions in force approved by the policy's chain in time":
             (appr["chain_incomplete"] == 0) if judged else None}
    cto = {"no CRITICAL exception without CTO sign-off": (appr["critical_without_cto"] == 0) if judged else None}
    # escalation by ticket: judged only once tickets are collected (tickets/), else no data
    tix = k.get("tickets")
    tix_judged = tix is not None and tix["evidence_collected"]
    tickets = {
        "HIGH/CRITICAL findings ticketed within the escalation window":
            (all(tix["escalation"][s_]["late"] + tix["escalation"][s_]["missing"] == 0 for s_ in tix["escalation"])
             if tix_judged else None),
        "no ticket closed while its finding is open": (tix["closed_without_fix"] == 0) if tix_judged else None}
    # each rule: {condition a reader understands: True | False | None (no data)}
    gate, nightly = {f"build-gate coverage {cov_text}": cov_b}, {f"nightly coverage {cov_text}": cov_n}
    exploitation = _exploitation_rules(k, nightly)
    crit = {"no CRITICAL finding overdue": crit_overdue == 0}
    scanned = {"every production deploy scanned (same digest) before it": _deploys_ok(deploys, "scanned_before")}
    # a deploy with no scan before it did not pass the scan gate: it fails change control, never passes
    # it vacuously (its missing pre-deploy scan has no CRITICAL only because there is no scan)
    change_gate = {"every production deploy scanned (same digest) before it": _deploys_ok(deploys, "scanned_before"),
                   "no production deploy with an unexcepted CRITICAL in its pre-deploy scan":
                   None if not deploys else all(not d["critical_unexcepted_before"] for d in deploys)}
    return {
        "a06": {**gate, **nightly, **crit},
        "a03_2025": {**gate, **nightly, **crit, **scanned},
        "a08": {**scanned, **({"every production deploy verified (cosign) before it": _deploys_ok(deploys, "verified_before")}
                              if verify_logged else {})},
        "iso_8_8": {**gate, **nightly, "no open finding overdue": no_overdue,
                    "exceptions valid (no invalid line, no expired entry still listed)": exc_ok, **chain, **tickets},
        "risk_acceptance": {**chain, **cto},
        "change_gate": change_gate,
        # Publishing cannot prove its own reproducibility: `ifc-scan verify` recomputes the week from the
        # manifest's inputs alone (CONTROLS.md's rule), so at publication this condition has no data.
        "reproducible": {REPRODUCIBLE: None},
        "cc7_1": {**nightly, **gate},
        "cc6_8": {"no production deploy of an unscanned or unknown digest":
                  None if not deploys else all(d["image_known"] and d["scanned_before"] for d in deploys)},
        "nist": {**gate, **nightly, "MTTR within the SLA for every severity with fixes": mttr_cond,
                 **exploitation.pop("nist_kev")},
        "cis": {**gate, **nightly, "no scan gap over the tolerance": k["cadence"]["lineages_with_gaps"] == 0},
        **exploitation,
    }


def _items_behind(k: dict, deploys: list[dict], targets: Targets, findings: list[dict],
                  exception_entries: list[dict]) -> dict[str, list[dict]]:
    """The items behind each condition, so a "not met" names what to look at."""
    cov_text = _coverage_text(targets)
    sla_h = k["policy"]["sla_hours"]
    mttr_ok = _mttr_within_sla(k)

    def dep(rows):
        return [{"kind": "deploy", "run_id": d["run_id"], "lineage": d["lineage"], "digest": d["digest"],
                 "time": d["time"], "evidence": d["evidence"]} for d in rows]

    def fnd(rows):
        return [{"kind": "finding", "id": f["vulnerability_id"], "lineage": f["lineage"], "severity": f["severity"],
                 "due_at": f["due_at"], "pkg": f["pkg_name"]} for f in rows]
    overdue = [f for f in findings if f["state"] == "overdue"]
    return {
        "every production deploy scanned (same digest) before it": dep(d for d in deploys if not d["scanned_before"]),
        "every production deploy verified (cosign) before it": dep(d for d in deploys if not d["verified_before"]),
        "no production deploy with an unexcepted CRITICAL in its pre-deploy scan":
            dep(d for d in deploys if d["critical_unexcepted_before"]),
        "no production deploy of an unscanned or unknown digest":
            dep(d for d in deploys if not (d["image_known"] and d["scanned_before"])),
        f"build-gate coverage {cov_text}": [{"kind": "build", "run_id": b["run_id"], "lineage": b["lineage"],
                                             "image": b["image"], "evidence": b["evidence"]}
                                            for b in k["coverage"]["build_gate"]["uncovered"]],
        f"nightly coverage {cov_text}": [{"kind": "nightly_gap", **g} for g in k["coverage"]["nightly"]["gaps"]],
        "no CRITICAL finding overdue": fnd(f for f in overdue if f["severity"] == "CRITICAL"),
        "no open finding overdue": fnd(overdue),
        "exceptions valid (no invalid line, no expired entry still listed)": [
            {"kind": "exception", "file": f"exceptions/{e['scope']}/{e['snapshot_date']}/{e['file']}", "line": e["line"],
             "id": e["id"], "problem": "invalid" if not e["valid"] else "expired, still listed"}
            for e in exception_entries if not e["valid"] or e["expired_listed"]],
        "exceptions in force approved by the policy's chain in time": [
            {"kind": "exception", "file": f"exceptions/{e['scope']}/{e['snapshot_date']}/{e['file']}", "line": e["line"],
             "id": e["id"], "problem": f"missing {e['missing_roles']}" if e["approval_change"] else "no change record"}
            for e in exception_entries if e.get("active") and e.get("chain_complete") is False],
        "no CRITICAL exception without CTO sign-off": [
            {"kind": "exception", "file": f"exceptions/{e['scope']}/{e['snapshot_date']}/{e['file']}", "line": e["line"],
             "id": e["id"], "problem": "no CTO approval"}
            for e in exception_entries if e.get("active") and e.get("severity_at_change") == "CRITICAL"
            and "cto" in (e.get("missing_roles") or "").split(", ")],
        "MTTR within the SLA for every severity with fixes": [
            {"kind": "mttr", "severity": s_, "mean_h": k["mttr_hours"][s_]["mean"], "sla_h": sla_h[s_]}
            for s_, ok in zip(("CRITICAL", "HIGH", "MEDIUM", "LOW"), mttr_ok) if ok is False],
        "no scan gap over the tolerance": [{"kind": "scan_gap", **g} for g in k["cadence"]["gaps"]],
        **_exploitation_items(k, findings, fnd, overdue),
    }


def _exploitation_items(k: dict, findings: list[dict], fnd, overdue: list[dict]) -> dict[str, list[dict]]:
    from ifc_scan.kpis.stage import OPEN_STATES    # at call time: stage.py imports this module
    ex = k.get("exploitation") or {}
    past_due = set((ex.get("kev_past_due") or {}).get("finding_ids", ()))
    kev_open = set((ex.get("kev_open_in_prod") or {}).get("finding_ids", ()))

    def kev(rows):
        return [{"kind": "finding", "id": f["vulnerability_id"], "lineage": f["lineage"], "severity": f["severity"],
                 "due_at": f["due_at"], "kev_due_date": f.get("kev_due_date"), "pkg": f["pkg_name"]} for f in rows]
    return {KEV_DUE: kev(f for f in findings if f["finding_id"] in past_due),
            KEV_OPEN: kev(f for f in findings if f["finding_id"] in kev_open),
            CRIT_30D: fnd(f for f in findings if f["severity"] == "CRITICAL" and f["state"].startswith(OPEN_STATES)
                          and f["age_hours"] >= 720),
            HIGH_OVERDUE: fnd(f for f in overdue if f["severity"] in ("CRITICAL", "HIGH"))}



def evaluate_controls(k: dict, deploys: list[dict], targets: Targets, findings: list[dict] = (),
                      exception_entries: list[dict] = ()) -> list[dict]:
    """Each control's status from its rule's conditions; a failed condition lists the items behind it
    (`findings`: the week's findings population; `exception_entries`: the entries in force at T)."""
    verify_logged = any(d["verified_before"] for d in deploys)
    rules = _rules(k, deploys, targets, verify_logged)
    offenders = _items_behind(k, deploys, targets, findings, exception_entries)
    rests_on = condition_requirements(_coverage_text(targets))
    out = []
    for c in CATALOG["controls"]:
        strength = c["strength"]
        if c["rule"] == "a08":
            strength = "P" if verify_logged else "W"
        out.append({"framework": c["framework"], "edition": c["edition"], "id": c["id"], "policy_id": c["policy_id"],
                    "strength": strength, "status": _status(rules[c["rule"]]), "evidence": c["evidence"],
                    "failed": [name for name, ok in rules[c["rule"]].items() if ok is False],
                    "rests_on": sorted({key for name, ok in rules[c["rule"]].items() if ok is False
                                        for key in rests_on[name]}),
                    "items": [{"condition": name, **item}
                              for name, ok in rules[c["rule"]].items() if ok is False for item in offenders.get(name, [])],
                    "no_data": [name for name, ok in rules[c["rule"]].items() if ok is None],
                    "intent": c["intent"], "limitation": c.get("limitation") if strength != "P" else None})
    return out
