"""A typed view of one week's kpis.json: the one place that knows the document's paths.

Readers (Dagster metadata and checks, the index, the CLI, the run summary) ask `WeekKpis` for a
figure instead of walking `kpis["coverage"]["build_gate"]["pct"]` themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")


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
    def expired_exceptions_listed(self) -> int:
        return self.doc["exceptions"]["expired_listed"]

    @property
    def controls(self) -> list[dict]:
        return self.doc["controls"]

    @property
    def failing_controls(self) -> list[dict]:
        return [c for c in self.controls if c["status"] == "fail"]

    @property
    def verdict(self) -> str:
        """COMPLIANT only when no control fails; the control table is the only source of it."""
        return "NOT COMPLIANT" if self.failing_controls else "COMPLIANT"

    def verdict_line(self) -> str:
        failing = self.failing_controls
        if not failing:
            judged = sum(1 for c in self.controls if c["status"] != "no-data")
            return f"{self.week}: COMPLIANT - no control fails ({judged} of {len(self.controls)} judged)"
        names = "; ".join(f"{c['framework']} {c['id']} ({', '.join(c['failed'])})" for c in failing)
        return f"{self.week}: NOT COMPLIANT - {len(failing)} of {len(self.controls)} controls fail: {names}"
