"""The week judged per policy requirement (kpis.json `requirements`, contract 1.3): the facts first, the
controls second.

A requirement is one rule of the policy as its owner states it (0 CRITICAL in production, 100 % coverage,
MTTR, no overdue finding, exception hygiene and approvals, gated deploys, escalation tickets, current
scans). Each has the week's value against its target, the items behind it (image, CVE, day, run), and
the failing controls it explains: a control condition names the requirements it rests on
(controls/evaluate.py condition_requirements), so one missed night is one unmet requirement however many
frameworks map it. The policy targets themselves are judged once, in kpis/targets.py.
"""

from __future__ import annotations

from dataclasses import replace

from ifc_scan.kpis.targets import Targets, TargetResult, judge_targets
from ifc_scan.kpis.view import WeekKpis
from ifc_scan.timeutil import duration

# the kind of the items judge_targets lists (its items are also the Dagster checks' offending_items, kind-less)
ITEM_KIND = {"zero_critical_in_production": "finding", "no_open_overdue": "finding", "build_gate_coverage": "build",
             "nightly_coverage": "nightly_gap", "no_expired_exception_listed": "exception"}
ITEMS_KEPT = 25        # items stored per requirement; `items_total` counts them all (the CSVs hold every row)


def _judged(value, ok: bool | None) -> bool | None:
    return None if value is None else ok


def _freshness(k: WeekKpis, window: float) -> TargetResult:
    """D23: every deployable image in service scanned within the window at T, and no scan gap over it."""
    fr = k.freshness or {"images": [], "stale": 0}
    gaps = k.doc["cadence"]["gaps"]
    items = [{"kind": "stale_image", "lineage": i["lineage"], "last_scan_at": i["last_scan_at"],
              "age_hours": i["age_hours"]} for i in fr["images"] if i["stale"]]
    items += [{"kind": "scan_gap", "lineage": g["lineage"], "from": g["from"], "to": g["to"], "hours": g["hours"]}
              for g in gaps if not g["open_at_T"]]
    bad = fr["stale"] + k.doc["cadence"]["lineages_with_gaps"]
    value = None if not fr["images"] else f"{fr['stale']} of {len(fr['images'])} image(s) stale at T, " \
        f"{k.doc['cadence']['lineages_with_gaps']} with a gap"
    return TargetResult("scans_current", f"Every image scanned at least every {duration(window)}", value,
                        f"none over {duration(window)}", _judged(value, bad == 0), items)


def _deploys(deploys: list[dict]) -> TargetResult:
    """The policy's scan gate: each production deploy's digest scanned before it, with no unexcepted
    CRITICAL in that scan, and verified where a verify step is logged."""
    verify_logged = any(d["verified_before"] for d in deploys)
    bad = [d for d in deploys if not (d["image_known"] and d["scanned_before"]) or d["critical_unexcepted_before"]
           or (verify_logged and not d["verified_before"])]
    items = [{"kind": "deploy", "run_id": d["run_id"], "lineage": d["lineage"], "digest": d["digest"], "time": d["time"],
              "problem": "no scan of this digest before it" if not d["scanned_before"] else
              "unknown digest" if not d["image_known"] else
              "unexcepted CRITICAL in its pre-deploy scan" if d["critical_unexcepted_before"] else "not verified",
              "evidence": d["evidence"]} for d in bad]
    value = None if not deploys else f"{len(bad)} of {len(deploys)} failed it"
    return TargetResult("deploys_gated", "Production deploys passed the scan gate", value, "every deploy",
                        _judged(value, not bad), items)


def _exception_lines(k: WeekKpis, entries: list[dict]) -> TargetResult:
    items = [{"kind": "exception", "file": f"exceptions/{e['scope']}/{e['snapshot_date']}/{e['file']}", "line": e["line"],
              "id": e["id"], "problem": e["invalid_reason"] or "invalid"} for e in entries if not e["valid"]]
    n = k.doc["exceptions"]["invalid"]
    return TargetResult("exception_lines_valid", "Exception files valid", n, "= 0 invalid lines", n == 0, items)


def _approvals(k: WeekKpis, entries: list[dict]) -> TargetResult:
    ap = k.doc.get("exception_approvals")
    judged = ap is not None and ap["evidence_collected"]
    items = [{"kind": "exception", "file": f"exceptions/{e['scope']}/{e['snapshot_date']}/{e['file']}", "line": e["line"],
              "id": e["id"], "problem": f"missing {e['missing_roles']}" if e.get("approval_change") else "no change record"}
             for e in entries if e.get("active") and e.get("chain_complete") is False]
    value = f"{ap['chain_incomplete']} of {ap['in_force']} incomplete" if judged else None
    ok = judged and ap["chain_incomplete"] == 0 and ap["critical_without_cto"] == 0
    return TargetResult("exception_approvals", "Exceptions approved by the policy's chain", value,
                        "every exception in force", ok if judged else None, items)


def _tickets(k: WeekKpis) -> TargetResult:
    tix = k.doc.get("tickets")
    if tix is None or not tix["evidence_collected"]:
        return TargetResult("tickets", "HIGH/CRITICAL findings escalated by ticket", None, "every one, in time", None)
    late = sum(e["late"] + e["missing"] for e in tix["escalation"].values())
    bad = late + tix["closed_without_fix"]
    return TargetResult("tickets", "HIGH/CRITICAL findings escalated by ticket",
                        f"{late} late or missing, {tix['closed_without_fix']} closed while open", "none", bad == 0)


def _mttr_other(k: WeekKpis) -> TargetResult:
    """MEDIUM and LOW against their SLA (the targets name only CRITICAL and HIGH; NIST RA-5 uses all)."""
    sla = k.doc["policy"]["sla_hours"]
    means = {s: k.mttr_mean(s) for s in ("MEDIUM", "LOW") if k.mttr(s)["n"]}
    late = [{"kind": "mttr", "severity": s, "mean_h": m, "sla_h": sla[s]} for s, m in means.items() if m > sla[s]]
    value = None if not means else "; ".join(f"{s} {duration(m)}" for s, m in means.items())
    return TargetResult("mttr_medium_low", "MTTR MEDIUM and LOW within their SLA", value,
                        f"MEDIUM <= {duration(sla['MEDIUM'])}, LOW <= {duration(sla['LOW'])}", _judged(value, not late), late)


def _known_exploited(k: WeekKpis, findings: list[dict]) -> TargetResult:
    """Issue 31 (D26): KEV-listed findings open in production at T within the policy's target, none past its
    KEV due date; no data before a KEV catalog is known at T."""
    ex = k.doc.get("exploitation")
    label = "KEV-listed findings open in production"
    if not ex or ex["kev_catalog"] is None:
        return TargetResult("known_exploited", label, None, "no KEV catalog known at T", None)
    listed, past_due = ex["kev_open_in_prod"], set(ex["kev_past_due"]["finding_ids"])
    ids = set(listed["finding_ids"])
    items = [{"kind": "finding", "finding": f["vulnerability_id"], "lineage": f["lineage"], "pkg": f["pkg_name"],
              "kev_due_date": f["kev_due_date"], "past_kev_due": f["finding_id"] in past_due,
              "finding_id": f["finding_id"]} for f in findings if f["finding_id"] in ids]
    ok = listed["count"] <= listed["target"] and not past_due
    return TargetResult("known_exploited", label, listed["count"], f"<= {listed['target']}, none past its KEV due date",
                        ok, sorted(items, key=lambda i: (not i["past_kev_due"], i["kev_due_date"] or "", i["finding"])))


def _reproducible() -> TargetResult:
    return TargetResult("reproducible", "Figures reproducible from their inputs", None,
                        "`ifc-scan verify` recomputes them (not checked at publication)", None)


def _with_items(t: TargetResult, findings: list[dict], entries: list[dict]) -> TargetResult:
    """The items behind the targets whose Dagster check lists none: the week's fixes behind an MTTR, the
    expired entries still listed."""
    if t.key in ("mttr_critical", "mttr_high"):
        sev = "CRITICAL" if t.key == "mttr_critical" else "HIGH"
        fixes = [{"kind": "finding", "finding": f["vulnerability_id"], "lineage": f["lineage"], "pkg": f["pkg_name"],
                  "finding_id": f["finding_id"], "ttr_hours": f["ttr_hours"]}
                 for f in findings if f["severity"] == sev and f["close_reason"] == "fixed" and f["ttr_hours"] is not None]
        return replace(t, items=sorted(fixes, key=lambda i: -i["ttr_hours"]))
    if t.key == "no_expired_exception_listed":
        return replace(t, items=[{"kind": "exception", "file": f"exceptions/{e['scope']}/{e['snapshot_date']}/{e['file']}",
                                  "line": e["line"], "id": e["id"], "problem": f"expired {e['expiry']}, still listed"}
                                 for e in entries if e["expired_listed"]])
    return t


def judge_requirements(kpis: dict, targets: Targets, findings: list[dict], deploys: list[dict],
                       entries: list[dict]) -> list[dict]:
    """Every requirement of the week as stored in kpis.json (without `controls`: see link_controls)."""
    k = WeekKpis(kpis)
    results = [_freshness(k, float(kpis["policy"]["scan_gap_hours"])),
               *(_with_items(t, findings, entries) for t in judge_targets(k, targets, findings)), _mttr_other(k),
               _known_exploited(k, findings), _deploys(deploys), _exception_lines(k, entries), _approvals(k, entries),
               _tickets(k), _reproducible()]
    return [{"key": t.key, "label": t.label, "value": t.value, "target": t.target, "status": t.status,
             "items_total": len(t.items),
             "items": [{"kind": ITEM_KIND.get(t.key), **i} if "kind" not in i else i for i in t.items[:ITEMS_KEPT]]}
            for t in results]


def link_controls(requirements: list[dict], controls: list[dict]) -> None:
    """Each requirement gains `controls`: the failing controls whose failed conditions rest on it, once.
    A failing control none of whose requirements is unmet (a control stricter than the policy's target,
    e.g. SLA `<=` against target `<`) is still named by the requirements its conditions rest on."""
    status = {r["key"]: r["status"] for r in requirements}
    for r in requirements:
        r["controls"] = []
    by_key = {r["key"]: r for r in requirements}
    for c in controls:
        if c["status"] != "fail":
            continue
        keys = c["rests_on"]
        unmet = [key for key in keys if status.get(key) in ("not met", "stale")] or keys
        for key in unmet:
            by_key[key]["controls"].append(f"{c['framework']} {c['id']}")
