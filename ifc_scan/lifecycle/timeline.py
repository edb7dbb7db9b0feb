"""The finding lifecycle on each lineage's production timeline (design/KPIS.md, "Findings and the
production timeline" and "Lifecycle of a finding").

Moments are processed in time order and each uses only what was observed before it, so the state
at any instant T read from the resulting events (time < T) is the as-of-T state.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ifc_scan.lifecycle.exception_match import ExceptionIndex
from ifc_scan.lifecycle.observations import Observations, Scan, is_production_deploy

SEV_RANK = {"UNKNOWN": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}


def finding_id(lineage: str, vuln_id: str, pkg_name: str, pkg_path: str) -> str:
    return hashlib.sha256(f"{lineage}\x1f{vuln_id}\x1f{pkg_name}\x1f{pkg_path}".encode()).hexdigest()[:20]


@dataclass(slots=True)
class Event:
    time: datetime
    kind: str                  # detect | present | close | reopen
    severity: str | None
    due_at: datetime | None    # due as of just after this event
    image: str | None
    scan_id: str | None
    reason: str | None = None  # close: fixed | withdrawn | retired
    # the finding's attributes as they stand after this event: the state at any T is read from the
    # last event before T, so these must travel with the event, not only with the Finding
    target: str | None = None
    purl: str | None = None
    title: str | None = None
    # a `present` event stands for the consecutive presences of one ISO week with unchanged attributes:
    # `time` is the first, `last_time` and `scan_id` the last, `presences` how many. No event spans a
    # Monday 00:00, so at every week end T the events before T say exactly what each presence said.
    last_time: datetime | None = None
    presences: int = 1


@dataclass(slots=True)
class Finding:
    fid: str
    lineage: str
    vuln_id: str
    pkg_name: str
    pkg_path: str
    detected_at: datetime
    cause: str
    purl: str | None
    target: str | None
    title: str | None
    cls: str | None
    fixed: str | None
    severity: str
    due_at: datetime | None
    open: bool = True
    last_image: str | None = None
    events: list[Event] = field(default_factory=list)
    key: tuple = ()              # (vuln_id, pkg_name, pkg_path): how a scan's findings are keyed
    first_seq: int = 0           # the stored seq of events[0] (resumed: only the last stored event is held)
    # of a resumed finding, what its stored events before events[0] said: (last presence's scan,
    # last close's (time, reason, scan) or None)
    stored_last: tuple = (None, None)

    def last_seen_and_close(self) -> tuple:
        """The scan of its last presence, and (time, reason, scan) of its last close, or None."""
        seen, close = self.stored_last
        seen_found = close_found = False
        for e in reversed(self.events):
            if not seen_found and e.kind in ("detect", "present", "reopen"):
                seen, seen_found = e.scan_id, True
            if not close_found and e.kind == "close":
                close, close_found = (e.time, e.reason, e.scan_id), True
            if seen_found and close_found:
                break
        return seen, close


@dataclass
class Moment:
    time: datetime
    image: str
    scan: Scan
    via_deploy: bool


@dataclass
class Resume:
    """Where a lineage's stored walk stopped (ifc_scan/lifecycle/incremental.py): items at or before `after`
    were walked; the walker's own state then was `current` and `has_deploy`. The lineage's findings and
    moments are restored into the Lifecycle before the walk resumes."""
    after: datetime
    current: str | None
    has_deploy: bool
    moments_stored: int = 0      # seq of the first new timeline moment
    images_stored: int = 0       # seq of the first new current_images entry
    moments_restored: int = 0    # how many stored moments were restored (the first, and those of the images
                                 # the new items can make moments of): new moments follow them in the timeline


def _sla_hours(policy: dict, severity: str):
    return policy["sla_hours"].get(severity)


def _due(policy, start: datetime, severity: str):
    h = _sla_hours(policy, severity)
    return None if h is None else start + timedelta(hours=h)


class Lifecycle:
    def __init__(self, obs: Observations, policy: dict):
        self.obs, self.policy = obs, policy
        self.exc = ExceptionIndex(obs)
        self.findings: dict[tuple, Finding] = {}
        self.moments: dict[str, list[Moment]] = defaultdict(list)     # lineage -> timeline
        self._moments_by_image: dict[tuple, list[Moment]] = defaultdict(list)   # (lineage, image) -> moments
        self.current_images: dict[str, list[tuple[datetime, str]]] = defaultdict(list)  # lineage -> [(since, image)]
        self._by_lineage: dict[str, list[Finding]] = defaultdict(list)
        self.resumed: dict[str, Resume] = {}                       # lineage -> where its walk resumed
        self.walk_state: dict[str, tuple] = {}                     # lineage -> (current, has_deploy) at the end

    def restore(self, lineage: str, resume: Resume, findings: list[Finding], moments: list[Moment]) -> None:
        """Load a lineage's stored walk (its findings, each with its last stored event, and its moments) so
        that run() extends it with the items after resume.after instead of walking from the start."""
        self.resumed[lineage] = resume
        resume.moments_restored = len(moments)
        for f in findings:
            self.findings[(lineage, *f.key)] = f
            self._by_lineage[lineage].append(f)
        for m in moments:
            self.moments[lineage].append(m)
            self._moments_by_image[(lineage, m.image)].append(m)

    # --- "not looked at" ----------------------------------------------------------------------
    def _in_scope(self, scan: Scan, severity: str, fixed, cls) -> bool:
        if scan.scope_severity and severity not in scan.scope_severity:
            return False
        if scan.scope_ignore_unfixed and not fixed:
            return False
        if scan.scope_vuln_type:
            pkg_class = "OS" if cls == "os-pkgs" else "LIBRARY"
            if pkg_class not in scan.scope_vuln_type:
                return False
        return True

    def _suppressed_unlisted(self, scan: Scan, lineage, vuln_id, pkg_path, target, purl) -> bool:
        return (not scan.lists_suppressed) and bool(self.exc.matching(lineage, scan.observed_at, vuln_id, pkg_path, target, purl))

    def looked_at(self, m: Moment, lineage, vuln_id, pkg_path, severity, fixed, cls, target, purl,
                  detected_at: datetime | None) -> bool:
        if m.via_deploy and detected_at is not None and detected_at > m.scan.observed_at:
            return False
        if not self._in_scope(m.scan, severity, fixed, cls):
            return False
        return not self._suppressed_unlisted(m.scan, lineage, vuln_id, pkg_path, target, purl)

    # --- the walk -------------------------------------------------------------------------------
    def run(self, only: set | None = None) -> "Lifecycle":
        """Walk every lineage (or the lineages in `only`)."""
        scans_by_lineage = defaultdict(list)
        for s in self.obs.scans:
            scans_by_lineage[s.lineage].append(s)
        deploys_by_lineage = defaultdict(list)
        for d in self.obs.deploys:
            if is_production_deploy(d):
                deploys_by_lineage[d.lineage].append(d)
        for lineage in sorted(set(scans_by_lineage) | set(deploys_by_lineage)):
            if only is not None and lineage not in only:
                continue
            self._walk(lineage, scans_by_lineage[lineage], deploys_by_lineage[lineage])
        return self

    def _walk(self, lineage: str, scans: list[Scan], deploys: list) -> None:
        retired_at = self.obs.retired.get(lineage)
        items = [(d.time, 0, i, "deploy", d) for i, d in enumerate(deploys)] + \
                [(s.observed_at, 1, i, "scan", s) for i, s in enumerate(scans)]
        items.sort(key=lambda x: x[:3])
        resume = self.resumed.get(lineage)
        current = resume.current if resume else None
        has_deploy = resume.has_deploy if resume else False
        scans_by_image: dict[str, list[Scan]] = defaultdict(list)
        for t, _, _, kind, x in items:
            if retired_at is not None and t >= retired_at:
                break
            if resume is not None and t <= resume.after:   # walked before: only what a later deploy looks back at
                if kind == "scan":
                    scans_by_image[x.image].append(x)
                continue
            if kind == "scan":
                scans_by_image[x.image].append(x)
                if not has_deploy and x.is_registry and x.image != current:
                    current = x.image
                    self.current_images[lineage].append((t, current))
                if x.image == current:
                    self._moment(lineage, Moment(t, current, x, False))
            else:
                has_deploy = True
                img = x.image or f"unmapped-manifest:{x.digest}"
                if img != current:
                    current = img
                    self.current_images[lineage].append((t, current))
                    prior = scans_by_image.get(img)
                    if prior:
                        self._moment(lineage, Moment(t, img, prior[-1], True))
        self.walk_state[lineage] = (current, has_deploy)
        if retired_at is not None:
            for f in self.findings_of(lineage):
                if f.open:
                    f.open = False
                    f.events.append(Event(retired_at, "close", f.severity, f.due_at, f.last_image, None, "retired",
                                          f.target, f.purl, f.title))

    def findings_of(self, lineage: str) -> list[Finding]:
        return self._by_lineage.get(lineage, [])

    def _moment(self, lineage: str, m: Moment) -> None:
        timeline = self.moments[lineage]
        earlier_same_image = self._moments_by_image[(lineage, m.image)]
        first = timeline[0] if timeline else None
        shown = m.scan.findings
        for key, row in sorted(shown.items()):
            fkey = (lineage, *key)
            f = self.findings.get(fkey)
            sev = row.severity or "UNKNOWN"
            if f is None:
                vid, pkg, ppath = key
                if first is None:
                    cause = "onboarded"
                elif m.image == first.image and not self.looked_at(first, lineage, vid, ppath, sev, row.fixed, row.cls,
                                                                   row.target, row.purl, None):
                    cause = "onboarded"
                elif not earlier_same_image or not any(
                        self.looked_at(e, lineage, vid, ppath, sev, row.fixed, row.cls, row.target, row.purl, None)
                        for e in earlier_same_image):
                    cause = "introduced"
                else:
                    cause = "disclosed"
                f = Finding(finding_id(lineage, *key), lineage, vid, pkg, ppath, m.time, cause, row.purl, row.target,
                            row.title, row.cls, row.fixed, sev, _due(self.policy, m.time, sev), True, m.image,
                            key=key)
                self.findings[fkey] = f
                self._by_lineage[lineage].append(f)
                f.events.append(Event(m.time, "detect", sev, f.due_at, m.image, m.scan.scan_id, None,
                                      f.target, f.purl, f.title))
                continue
            if not f.open:
                f.open = True
                f.events.append(Event(m.time, "reopen", sev, f.due_at, m.image, m.scan.scan_id, None,
                                      row.target or f.target, row.purl or f.purl, row.title or f.title))
            if SEV_RANK.get(sev, 0) > SEV_RANK.get(f.severity, 0):
                rise_due = _due(self.policy, m.time, sev)
                if rise_due is not None:
                    f.due_at = rise_due if f.due_at is None else min(f.due_at, rise_due)
            f.severity, f.fixed, f.cls = sev, row.fixed, row.cls or f.cls
            f.purl, f.target, f.title, f.last_image = row.purl or f.purl, row.target or f.target, row.title or f.title, m.image
            last = f.events[-1]
            if (last.kind == "present" and last.time.isocalendar()[:2] == m.time.isocalendar()[:2]
                    and (last.severity, last.due_at, last.image, last.target, last.purl, last.title)
                    == (sev, f.due_at, m.image, f.target, f.purl, f.title)):
                last.last_time, last.scan_id, last.presences = m.time, m.scan.scan_id, last.presences + 1
            else:
                f.events.append(Event(m.time, "present", sev, f.due_at, m.image, m.scan.scan_id, None,
                                      f.target, f.purl, f.title, m.time))
        for f in self._by_lineage.get(lineage, []):
            if not f.open or f.key in shown:
                continue
            if not self.looked_at(m, lineage, f.vuln_id, f.pkg_path, f.severity, f.fixed, f.cls, f.target, f.purl, f.detected_at):
                continue
            if self.exc.matching(lineage, m.scan.observed_at, f.vuln_id, f.pkg_path, f.target, f.purl):
                continue  # excepted, not fixed: it can close only once no matching exception is in force
            f.open = False
            reason = "fixed" if m.image != f.last_image else "withdrawn"
            f.events.append(Event(m.time, "close", f.severity, f.due_at, m.image, m.scan.scan_id, reason,
                                  f.target, f.purl, f.title))
        timeline.append(m)
        earlier_same_image.append(m)


def build_lifecycle(obs: Observations, policy: dict, only: set | None = None) -> Lifecycle:
    return Lifecycle(obs, policy).run(only)
