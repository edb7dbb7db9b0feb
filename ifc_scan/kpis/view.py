"""A typed view of one week's kpis.json: the one place that knows the document's paths.

Readers (Dagster metadata and checks, the index, the CLI, the run summary) ask `WeekKpis` for a
figure instead of walking `kpis["coverage"]["build_gate"]["pct"]` themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
NO_EVIDENCE = "NO NEW EVIDENCE"     # the third verdict (D23), neither COMPLIANT nor NOT COMPLIANT


@dataclass(frozen=True)
class WeekKpis:
    doc: dict

    @property
    def week(self) -> str:
        return self.doc["week"]

    @property
    def critical_in_prod(self) -> int:
        return self.doc["critical_in_prod"]["count"]

    @property
    def critical_in_prod_excepted(self) -> int:
        return self.doc["critical_in_prod"]["excepted"]

    @property
    def build_gate(self) -> dict:
        return self.doc["coverage"]["build_gate"]

    @property
    def nightly(self) -> dict:
        return self.doc["coverage"]["nightly"]

    def mttr_mean(self, severity: str) -> float | None:
        return self.doc["mttr_hours"][severity]["mean"]

    def mttr(self, severity: str) -> dict:
        return self.doc["mttr_hours"][severity]

    @property
    def open_overdue(self) -> int:
        return sum(self.doc["sla"][s]["open_overdue"] or 0 for s in SEVERITIES)

    @property
    def open_backlog(self) -> int:
        return self.doc["open_backlog"]["total"]

    def open_by_severity(self, severity: str) -> int:
        return self.doc["open_backlog"][severity]["total"]

    @property
    def new_findings(self) -> int:
        return self.doc["new_findings"]["total"]

    @property
    def remediated(self) -> int:
        return self.doc["remediated"]["total"]

    @property
    def resolved(self) -> int:
        """Findings closed in the week for any reason (fixed, withdrawn by the scanner, lineage retired): with
        the new ones and the regressions, what moved the open backlog (D24)."""
        r = self.doc["remediated"]
        return r["total"] + r["withdrawn"] + r["retired"]

    @property
    def expired_exceptions_listed(self) -> int:
        return self.doc["exceptions"]["expired_listed"]

    @property
    def freshness(self) -> dict | None:
        """D23 (contract 1.3); None in a document of an earlier contract."""
        return self.doc.get("freshness")

    @property
    def stale_images(self) -> int:
        return (self.freshness or {}).get("stale", 0)

    @property
    def no_new_evidence(self) -> bool:
        return bool((self.freshness or {}).get("no_new_evidence"))

    @property
    def requirements(self) -> list[dict]:
        return self.doc.get("requirements", [])

    @property
    def unmet_requirements(self) -> list[dict]:
        return [r for r in self.requirements if r["status"] in ("not met", "stale")]

    def requirements_met(self) -> tuple[int, int]:
        """(met, judged): a stale figure is judged and not met; no data is not judged."""
        judged = [r for r in self.requirements if r["status"] != "no data"]
        return sum(1 for r in judged if r["status"] == "met"), len(judged)

    def controls_passing(self) -> tuple[int, int]:
        """(passing, judged): a partial control (no condition fails, some have no data) passes."""
        judged = [c for c in self.controls if c["status"] != "no-data"]
        return sum(1 for c in judged if c["status"] in ("pass", "partial")), len(judged)

    @property
    def controls(self) -> list[dict]:
        return self.doc["controls"]

    @property
    def failing_controls(self) -> list[dict]:
        return [c for c in self.controls if c["status"] == "fail"]

    @property
    def verdict(self) -> str:
        """NO NEW EVIDENCE first (D23: a week nothing was received for is not judged on old evidence);
        else COMPLIANT only when no control fails: the control table is the only source of it."""
        if self.no_new_evidence:
            return NO_EVIDENCE
        return "NOT COMPLIANT" if self.failing_controls else "COMPLIANT"

    def evidence_line(self) -> str:
        since = self.freshness["last_evidence_at"]
        return (f"no evidence received since {since[:10] + ' ' + since[11:16] + 'Z' if since else 'ever'}, "
                "check the collectors")

    def verdict_line(self) -> str:
        if self.no_new_evidence:
            return f"{self.week}: {NO_EVIDENCE} - {self.evidence_line()}"
        met, judged = self.requirements_met()
        unmet = "; ".join(r["label"] for r in self.unmet_requirements)
        degree = f"{met} of {judged} requirements met" + (f" (not met: {unmet})" if unmet else "") + " - " \
            if self.requirements else ""
        failing = self.failing_controls
        if not failing:
            judged = sum(1 for c in self.controls if c["status"] != "no-data")
            return f"{self.week}: COMPLIANT - {degree}no control fails ({judged} of {len(self.controls)} judged)"
        names = "; ".join(f"{c['framework']} {c['id']}" for c in failing)
        return f"{self.week}: NOT COMPLIANT - {degree}{len(failing)} of {len(self.controls)} controls fail: {names}"
