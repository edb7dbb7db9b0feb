"""The policy's targets, read from the policy file, and the one judgement of a week against them.

The headline cards, the Dagster checks, the controls' coverage conditions, the verdict and the
`ifc-scan run` summary all call `judge_targets` / `meets_coverage`; none re-states a target.
POLICY.md: "0 CRITICAL in production, 100 % coverage, MTTR CRITICAL < 24 h, MTTR HIGH < 7 d" (strict
`<` for MTTR; a week with no fix has no MTTR and is not judged on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ifc_scan.kpis.view import WeekKpis


@dataclass(frozen=True)
class Targets:
    critical_in_prod: int
    coverage_pct: float
    mttr_critical_hours: float
    mttr_high_hours: float

    @classmethod
    def from_policy(cls, policy: dict) -> "Targets":
        t = policy["targets"]
        return cls(int(t["critical_in_prod"]), float(t["coverage_pct"]), float(t["mttr_critical_hours"]),
                   float(t["mttr_high_hours"]))


def meets_coverage(pct: float | None, targets: Targets) -> bool | None:
    """None (nothing to measure) stays None: no build is neither a pass nor a fail."""
    return None if pct is None else pct >= targets.coverage_pct


def meets_mttr(mean: float | None, limit: float) -> bool | None:
    return None if mean is None else mean < limit


@dataclass(frozen=True)
class TargetResult:
    key: str                    # check name in Dagster, card id in the report
    label: str                  # what a reader sees
    value: object               # the week's figure (None = no data)
    target: str                 # the target as text, from the policy
    passed: bool | None         # None: nothing to judge this week (or stale, below)
    items: list = field(default_factory=list)   # offending items (CVE, lineage, run, day, ...)
    stale: bool = False         # D23: met on evidence older than the policy's window: neither met nor 0

    @property
    def status(self) -> str:
        """What a reader is told: met | not met | no data | stale."""
        if self.stale:
            return "stale"
        return "no data" if self.passed is None else ("met" if self.passed else "not met")


def judge_targets(k: WeekKpis, targets: Targets, findings: list[dict] | None = None) -> list[TargetResult]:
    """Every policy target plus open overdue findings and exception hygiene, judged for one week.
    `findings`: the week's findings population (findings.csv rows) to name offending findings."""
    findings = findings or []
    crit = [{"finding": f["vulnerability_id"], "lineage": f["lineage"], "pkg": f["pkg_name"], "state": f["state"],
             "finding_id": f["finding_id"]}
            for f in findings if f["severity"] == "CRITICAL" and f["state"] in ("open", "overdue")]
    overdue = [{"finding": f["vulnerability_id"], "lineage": f["lineage"], "severity": f["severity"],
                "due_at": f["due_at"], "pkg": f["pkg_name"], "finding_id": f["finding_id"]}
               for f in findings if f["state"] == "overdue"]
    bg, ng = k.build_gate, k.nightly
    # D23: a count of open findings read from an image not scanned within the window is not known to be 0
    stale = k.stale_images > 0
    crit_ok = k.critical_in_prod <= targets.critical_in_prod
    return [
        TargetResult("zero_critical_in_production", "CRITICAL in production", k.critical_in_prod,
                     f"<= {targets.critical_in_prod}", None if crit_ok and stale else crit_ok, crit,
                     stale=crit_ok and stale),
        TargetResult("build_gate_coverage", "Build-gate coverage %", bg["pct"], f">= {targets.coverage_pct:g} %",
                     meets_coverage(bg["pct"], targets),
                     [{"run_id": u["run_id"], "lineage": u["lineage"], "image": u["image"], "reason": u["reason"],
                       "evidence": u["evidence"]} for u in bg["uncovered"]]),
        TargetResult("nightly_coverage", "Nightly coverage %", ng["pct"], f">= {targets.coverage_pct:g} %",
                     meets_coverage(ng["pct"], targets), list(ng["gaps"])),
        TargetResult("mttr_critical", "MTTR CRITICAL", k.mttr_mean("CRITICAL"),
                     f"< {targets.mttr_critical_hours:g} h", meets_mttr(k.mttr_mean("CRITICAL"), targets.mttr_critical_hours)),
        TargetResult("mttr_high", "MTTR HIGH", k.mttr_mean("HIGH"), f"< {targets.mttr_high_hours:g} h",
                     meets_mttr(k.mttr_mean("HIGH"), targets.mttr_high_hours)),
        TargetResult("no_open_overdue", "Open findings past due", k.open_overdue, "= 0",
                     None if k.open_overdue == 0 and stale else k.open_overdue == 0, overdue,
                     stale=k.open_overdue == 0 and stale),
        TargetResult("no_expired_exception_listed", "Expired exceptions still listed", k.expired_exceptions_listed,
                     "= 0", k.expired_exceptions_listed == 0),
    ]
