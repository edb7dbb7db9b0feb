"""The policy's approval chain for each exception in force (POLICY.md "Approval Chain";
docs/exception-governance.md; decisions D16-D18 in docs/kpi-decisions.md).

An entry in force is traced to the change that gave it its present form (ingest/approvals.py), and
that change's approvals are judged:
- required: a security engineer and an engineering lead; a CTO too when the vulnerability was
  CRITICAL when the change took effect (D17: its severity then; unknown counts as CRITICAL);
- an approval counts when it was given at or before the change reached the branch (`landed_at`),
  is the reviewer's last decisive review by then (APPROVED; a later CHANGES_REQUESTED withdraws it)
  and was not dismissed;
- the change's author never approves it (self-approval), and each role needs its own person (D18);
- a role counts when inventory/approvers.yaml gives it to the reviewer at that time;
- an approval is only as strong as its evidence (D22): a pull-request review by the approver's account
  counts; an `Approved-by:` trailer counts only when git found the commit's signature good and made with
  a key approvers.yaml lists for the approver the trailer names; any other trailer is asserted, not
  verified: shown, never counted.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import datetime

from ifc_scan.ingest.approvals import ROLES, Approver, key_fingerprint
from ifc_scan.timeutil import iso_z

BASE_ROLES = ("security-engineer", "engineering-lead")
_SEV_RANK = {"CRITICAL": 4, "HIGH": 3, "MEDIUM": 2, "LOW": 1, "UNKNOWN": 0}
# entries each week lists, and the columns exceptions.csv gains
APPROVAL_COLUMNS = ("approval_change", "approval_pull_request", "approval_landed_at", "approval_author",
                    "approvers", "severity_at_change", "missing_roles", "chain_complete", "chain_problem",
                    "change_history", "approval_evidence")
# the strength of an approval's evidence (D22); only the first two count
REVIEW, SIGNED_TRAILER, ASSERTED = "review", "signed trailer", "asserted, not verified"


def required_roles(severity: str) -> tuple[str, ...]:
    """The policy's chain: CRITICAL (or a severity nobody knew, D17) adds the CTO."""
    return BASE_ROLES + (("cto",) if severity in ("CRITICAL", "UNKNOWN") else ())


def counted_approvals(reviews: list[dict], landed_at: datetime, author: str | None,
                      author_email: str | None) -> tuple[list[dict], list[str]]:
    """The approvals that count for a change, and why the others do not (one reason per reviewer)."""
    by_reviewer: dict[str, list[dict]] = defaultdict(list)
    for r in reviews:
        by_reviewer[r["reviewer"]].append(r)
    counted, refused = [], []
    for who, rs in sorted(by_reviewer.items()):
        rs = sorted(rs, key=lambda r: r["submitted_at"] or datetime.max)
        is_author = bool(author and who and who.lower() == author.lower()) or bool(
            author_email and any((r["email"] or "").lower() == author_email.lower() for r in rs))
        if is_author:      # the author's own reviews never count; only an approval is worth naming
            if any(r["state"] == "APPROVED" for r in rs):
                refused.append(f"{who}: self-approval")
            continue
        before = [r for r in rs if r["submitted_at"] is not None and r["submitted_at"] <= landed_at]
        decisive = [r for r in before if r["state"] in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED")]
        last = decisive[-1] if decisive else None
        if last is not None and last["state"] == "APPROVED":
            counted.append(last)
        elif last is not None and last["state"] == "DISMISSED":
            refused.append(f"{who}: review dismissed")
        elif last is not None:
            refused.append(f"{who}: changes requested")
        elif any(r["state"] == "APPROVED" for r in rs):
            refused.append(f"{who}: approved after the change took effect")
    return counted, refused


def assign_roles(approvals: list[dict], roles_of, needed: tuple[str, ...]) -> dict[str, dict]:
    """role -> the approval that fills it, each approver filling one role at most (D18): a maximum
    matching of approvers to roles (augmenting paths; a handful of each)."""
    roles = [set(roles_of(a)) for a in approvals]
    holder: dict[str, int] = {}

    def place(i: int, tried: set) -> bool:
        for role in needed:
            if role in roles[i] and role not in tried:
                tried.add(role)
                if role not in holder or place(holder[role], tried):
                    holder[role] = i
                    return True
        return False

    for i in range(len(approvals)):
        place(i, set())
    return {role: approvals[i] for role, i in holder.items()}


class Governance:
    """What the weekly stage reads of the exception governance tables, loaded once per run."""

    def __init__(self, con, scans):
        self.has_evidence = con.execute("SELECT count(*) FROM exception_changes").fetchone()[0] > 0
        cols = ("scope", "commit_sha", "file", "landed_at", "author", "author_email", "pr_number", "pr_url", "title",
                "content_sha256", "signature_status", "signature_keys")
        self.changes: dict[tuple, dict] = {}
        self.by_content: dict[tuple, list[dict]] = defaultdict(list)     # (scope, file, sha256) -> changes
        for row in con.execute(f"SELECT {', '.join(cols)} FROM exception_changes ORDER BY landed_at, committed_at"
                               ).fetchall():
            c = dict(zip(cols, row))
            self.changes[(c["scope"], c["commit_sha"])] = c
            self.by_content[(c["scope"], c["file"], c["content_sha256"])].append(c)
        self.reviews: dict[tuple, list[dict]] = defaultdict(list)
        for scope, sha, reviewer, email, state, at, via in con.execute(
                "SELECT scope, commit_sha, reviewer, email, state, submitted_at, via FROM exception_reviews").fetchall():
            self.reviews[(scope, sha)].append({"reviewer": reviewer, "email": email, "state": state,
                                               "submitted_at": at, "via": via})
        self.versions = {(s, sha, line): (version, history) for s, sha, line, version, history in con.execute(
            "SELECT scope, commit_sha, line_no, version_sha, history FROM exception_line_versions").fetchall()}
        # each approver row with the fingerprints of its signing keys (what git reports for a signature)
        self.approvers = [(Approver(*r[:5], r[5] or []), {key_fingerprint(k) for k in r[5] or []})
                          for r in con.execute("SELECT login, role, emails, since, until, keys FROM approvers "
                                               "ORDER BY login, role").fetchall()]
        # the severities scans gave each excepted vulnerability: (observed_at, lineage, severity), by time
        at = {s.scan_id: (s.observed_at, s.lineage) for s in scans}
        self.severity: dict[str, list[tuple]] = defaultdict(list)
        for scan_id, vid, sev in con.execute(
                "SELECT DISTINCT scan_id, vulnerability_id, severity FROM scan_vulnerabilities "
                "WHERE vulnerability_id IN (SELECT DISTINCT vuln_id FROM exceptions WHERE vuln_id IS NOT NULL)").fetchall():
            if scan_id in at:
                self.severity[vid].append((*at[scan_id], sev or "UNKNOWN"))
        for v in self.severity.values():
            v.sort(key=lambda x: x[0])

    def _named(self, approval: dict, when: datetime) -> list[tuple[Approver, set]]:
        """The approvers.yaml rows (with their key fingerprints) in force at `when` that the approval names:
        by login, or by address; a signed trailer only the rows that list the key it was signed with."""
        who, email = (approval["reviewer"] or "").lower(), (approval["email"] or "").lower()
        signed_with = approval.get("signed_with")
        return [(a, fps) for a, fps in self.approvers
                if (a.login.lower() == who or (email and email in a.emails))
                and (a.since is None or a.since <= when) and (a.until is None or when < a.until)
                and (signed_with is None or signed_with in fps)]

    def roles_of(self, approval: dict, when: datetime) -> list[str]:
        return sorted({a.role for a, _fps in self._named(approval, when)})

    def evidence(self, approval: dict, change: dict) -> tuple[str, str | None]:
        """(strength, why a trailer is not verified) of one approval (D22). A good signature by a key listed
        for the named approver makes the trailer a signed one; `signed_with` is set to that key so the
        roles it fills are those of the rows listing the key (a trailer naming one person by login and
        another by address gets the signer's roles only)."""
        if approval["via"] != "git-trailer":
            return REVIEW, None
        keys = change["signature_keys"] or []
        if not keys:
            status = change["signature_status"] or "none"
            return ASSERTED, "commit not signed" if status == "none" else f"commit signature {status}"
        listed = set().union(*(fps for _a, fps in self._named(approval, change["landed_at"])))
        if not listed:
            return ASSERTED, "approvers.yaml lists no signing key for them"
        match = next((k for k in keys if k in listed), None)
        if match is None:
            return ASSERTED, f"signed by {keys[0]}, a key approvers.yaml does not list for them"
        approval["signed_with"] = match
        return SIGNED_TRAILER, None

    def severity_at(self, vuln_id: str | None, t: datetime, end: datetime, applies) -> str:
        """D17: the highest severity among the latest scans at or before t of each lineage the entry applies
        to; none by then: the first one seen after (before the week's end); none at all: UNKNOWN."""
        seen = [x for x in self.severity.get(vuln_id or "", ()) if x[0] < end and applies(x[1])]
        i = bisect.bisect_right([x[0] for x in seen], t)
        latest: dict[str, str] = {}
        for when, lineage, sev in seen[:i]:
            latest[lineage] = sev
        if latest:
            return max(latest.values(), key=lambda s: _SEV_RANK.get(s, 0))
        if i < len(seen):
            first_after = seen[i][0]
            return max((s for w, _l, s in seen[i:] if w == first_after), key=lambda s: _SEV_RANK.get(s, 0))
        return "UNKNOWN"

    def trace(self, e) -> dict | None:
        """The change whose file is the snapshot the entry is listed in (same scope, file and bytes,
        landed on or before the snapshot's date)."""
        cands = [c for c in self.by_content.get((e.scope, e.file, e.sha256), ())
                 if c["landed_at"].date() <= e.snapshot_date.date()]
        return cands[-1] if cands else None

    def judge(self, e, end: datetime, applies) -> dict:
        """The approval columns of one entry line (APPROVAL_COLUMNS). An entry with no change record is
        judged as approved by nobody (its severity taken at its snapshot's date)."""
        snap_change = self.trace(e)
        version_sha, history = (self.versions.get((e.scope, snap_change["commit_sha"], e.line_no), (None, None))
                                if snap_change else (None, None))
        change = self.changes.get((e.scope, version_sha)) if version_sha else None
        if change is None:
            severity = self.severity_at(e.vuln_id, e.snapshot_date, end, applies)
            needed = required_roles(severity)
            problem = ("no version-control record of this snapshot (collect the file's history: "
                       "ifc-scan collect exceptions)" if snap_change is None else
                       f"line {e.line_no} not found in change {snap_change['commit_sha'][:12]}")
            return {**dict.fromkeys(APPROVAL_COLUMNS), "approvers": "", "severity_at_change": severity,
                    "missing_roles": ", ".join(needed), "chain_complete": False, "chain_problem": problem}
        landed = change["landed_at"]
        severity = self.severity_at(e.vuln_id, landed, end, applies)
        needed = required_roles(severity)
        reviews = [dict(r) for r in self.reviews.get((e.scope, change["commit_sha"]), [])]
        given, refused = counted_approvals(reviews, landed, change["author"], change["author_email"])
        counted, shown = [], []
        for a in given:
            strength, why = self.evidence(a, change)
            shown.append(f"{a['reviewer']}: {strength}" + (f" ({why})" if why else ""))
            if why:
                refused.append(f"{a['reviewer']}: Approved-by trailer {ASSERTED} ({why})")
            else:
                counted.append(a)
        filled = assign_roles(counted, lambda a: self.roles_of(a, landed), needed)
        missing = [r for r in needed if r not in filled]
        no_role = [a["reviewer"] for a in counted if not self.roles_of(a, landed)]
        problems = refused + [f"{w}: no approver role in inventory/approvers.yaml at that time" for w in no_role]
        if missing:
            problems.insert(0, "missing " + ", ".join(missing))
        if severity == "UNKNOWN" and "cto" in missing:
            problems.append("severity unknown (no scan showed it; --show-suppressed would): CTO needed")
        return {
            "approval_change": change["commit_sha"][:12], "approval_pull_request": change["pr_url"] or (
                f"#{change['pr_number']}" if change["pr_number"] else "none (pushed without a pull request)"),
            "approval_landed_at": iso_z(landed), "approval_author": change["author"],
            "approvers": "; ".join(f"{a['reviewer']} ({role}, {iso_z(a['submitted_at'])})"
                                   for role, a in sorted(filled.items(), key=lambda x: ROLES.index(x[0]))),
            "severity_at_change": severity, "missing_roles": ", ".join(missing),
            "chain_complete": not missing, "chain_problem": "; ".join(problems) or None, "change_history": history,
            "approval_evidence": "; ".join(shown) or None,
        }


def approval_summary(entries: list[dict], has_evidence: bool) -> dict:
    """kpis.json `exception_approvals`: the chain of every exception in force (`active` entries)."""
    active = [e for e in entries if e["active"]]
    return {
        "evidence_collected": has_evidence,
        "in_force": len(active),
        "chain_complete": sum(1 for e in active if e["chain_complete"]),
        "chain_incomplete": sum(1 for e in active if not e["chain_complete"]),
        "untraced": sum(1 for e in active if e["approval_change"] is None),
        "critical_without_cto": sum(1 for e in active if e["severity_at_change"] == "CRITICAL"
                                    and "cto" in (e["missing_roles"] or "").split(", ")),
        "entries": [{"scope": e["scope"], "file": e["file"], "line": e["line"], "id": e["id"],
                     "change": e["approval_change"], "pull_request": e["approval_pull_request"],
                     "landed_at": e["approval_landed_at"], "approvers": e["approvers"],
                     "severity_at_change": e["severity_at_change"], "missing_roles": e["missing_roles"],
                     "chain_complete": e["chain_complete"], "problem": e["chain_problem"],
                     "evidence": e["approval_evidence"]} for e in active],
    }
