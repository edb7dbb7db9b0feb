"""Which exception entries are in force at an instant, and whether one matches a finding.

A snapshot `exceptions/<scope>/<date>/` is in force from 00:00Z of its date until the next snapshot
of the same scope; an entry in it suppresses while it is valid and its expiry is after the instant
(Trivy: an entry is already expired on its date).
"""

from __future__ import annotations

import bisect

from ifc_scan.ingest.exceptions import exception_format
from ifc_scan.ingest.trivy_patterns import BadPattern, glob_matches, parse_purl, purl_or_none
from ifc_scan.lifecycle.observations import ExceptionEntry, Observations


class ExceptionIndex:
    def __init__(self, obs: Observations):
        self.obs = obs
        self.by_snapshot: dict[tuple, list[ExceptionEntry]] = {}
        for e in obs.exceptions:
            self.by_snapshot.setdefault((e.scope, e.snapshot_date), []).append(e)
        self._cache: dict = {}

    def snapshot_at(self, scope: str, t) -> object | None:
        starts = self.obs.snapshots.get(scope) or []
        i = bisect.bisect_right(starts, t) - 1
        return starts[i] if i >= 0 else None

    def listed_at(self, t) -> list[ExceptionEntry]:
        """Every entry line of the snapshots in force at t, over all scopes (valid or not)."""
        out = []
        for scope in sorted(self.obs.snapshots):
            start = self.snapshot_at(scope, t)
            if start is not None:
                out.extend(self.by_snapshot.get((scope, start), []))
        return out

    def scope_applies(self, scope: str, lineage: str) -> bool:
        if scope == "_global":
            return True
        target = self.obs.scope_lineage.get(scope)
        return target == lineage if target else lineage.rsplit("/", 1)[-1] == scope or lineage == scope

    def suppressing(self, lineage: str, t) -> list[ExceptionEntry]:
        """Entries that suppress findings of `lineage` at instant t."""
        key = (lineage, t)
        hit = self._cache.get(key)
        if hit is None:
            hit = [e for e in self.listed_at(t) if e.valid and e.vuln_id and (e.expiry is None or e.expiry > t)
                   and e.section in ("any", "vulnerabilities") and self.scope_applies(e.scope, lineage)]
            if len(self._cache) > 200000:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    @staticmethod
    def entry_matches(e: ExceptionEntry, vuln_id: str, pkg_path: str, target: str | None, purl: str | None) -> bool:
        """Trivy's IgnoreFindings.Match, tried with the result's target and with the package path: the ID
        equal; a path glob matching that path when the entry gives paths; an entry purl covering the
        finding's when both have one (Trivy skips the purl test for a finding without a purl)."""
        if e.vuln_id != vuln_id:
            return False
        try:
            if e.paths and not any(glob_matches(p, path) for p in e.paths for path in (target or "", pkg_path or "")):
                return False
            found = purl_or_none(purl)
            if e.purls and (found is not None or exception_format(e.file) == "openvex") and not (
                    found is not None and any(parse_purl(p).covers(found) for p in e.purls if purl_or_none(p))):
                return False      # an OpenVEX statement speaks only of the packages it names
        except BadPattern:      # a file with an invalid pattern is refused whole when read: never here
            return False
        return True

    def matching(self, lineage: str, t, vuln_id: str, pkg_path: str, target: str | None, purl: str | None):
        return [e for e in self.suppressing(lineage, t) if self.entry_matches(e, vuln_id, pkg_path, target, purl)]
