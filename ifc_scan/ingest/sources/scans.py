"""trivy/**.json|.sarif and ci/github-actions/<run>/artifacts/**.json|.sarif: Trivy reports (every era of
its JSON, SARIF, k8s and Operator reports). A file is its own unit: its scans are keyed by its sha256, so
a changed file adds a scan rather than replacing one; the same bytes under another name are a duplicate,
not counted twice. Over the size limit a file is rejected unread."""

from __future__ import annotations

import re
from datetime import timedelta

from ifc_scan.ingest.model import ParsedScan, Rejected
from ifc_scan.ingest.scan_files import ScanRead, read_landing_scans
from ifc_scan.ingest.sources.base import Context, EvidenceSource, Plan, Unit
from ifc_scan.timeutil import EARLIEST_PLAUSIBLE

# 2: the CVE aliases of each vulnerability stored (cve_aliases, issue 31). A warehouse read by an older version has
# every stored scan file still in the landing zone read once more, and gains the aliases (see `finish`).
SCAN_READER_VERSION = "2"
FUTURE_SLACK_DAYS = 2                  # a CreatedAt more than this after ingest time is impossible
ROW_TABLES = ("scan_vulnerabilities", "scan_misconfigurations", "scan_secrets", "scan_licenses")


def check_dates(scan: ParsedScan, now) -> None:
    if scan.created_at is not None:
        if scan.created_at < EARLIEST_PLAUSIBLE:
            raise Rejected(f"CreatedAt {scan.created_at.isoformat()}Z is before 2000: not a real scan time")
        if scan.created_at > now + timedelta(days=FUTURE_SLACK_DAYS):
            raise Rejected(f"CreatedAt {scan.created_at.isoformat()}Z is in the future")


class Scans(EvidenceSource):
    name = "scan reports"
    unit_name = "scan files"
    folder = "trivy/"
    kinds = ("scan", "ci-artifact")
    replaces = "nothing: a file's scans are keyed by its content (sha256); the same content again is a duplicate"
    tables = {
        "scans": ["scan_id", "source_sha256", "source_path", "report_index", "format", "schema_version",
                  "trivy_version", "artifact_name", "artifact_type", "lineage", "image_id", "repo_digests", "repo_tags",
                  "created_at", "file_mtime", "ci_run_id", "image_created", "os_family", "os_name",
                  "lists_suppressed", "n_vulnerabilities", "n_misconfigurations", "n_secrets", "n_licenses"],
        "scan_vulnerabilities": ["scan_id", "target", "class", "pkg_type", "vulnerability_id", "pkg_name", "pkg_path",
                                 "pkg_id", "purl", "installed_version", "fixed_version", "status", "severity",
                                 "severity_source", "title", "primary_url", "cvss_score", "published_date",
                                 "suppressed", "suppression_status", "suppression_statement", "suppression_source",
                                 "cve_aliases"],
        "scan_misconfigurations": ["scan_id", "target", "class", "config_type", "check_id", "avd_id", "title",
                                   "message", "resolution", "severity", "status", "primary_url", "start_line",
                                   "end_line", "suppressed"],
        "scan_secrets": ["scan_id", "target", "rule_id", "category", "severity", "title", "start_line", "end_line",
                         "match", "suppressed"],
        "scan_licenses": ["scan_id", "target", "pkg_name", "file_path", "name", "severity", "category", "confidence",
                          "link", "suppressed"]}
    read = staticmethod(read_landing_scans)
    parallel = True
    hashed_by_reader = True
    reader_version = ("scan_reader_version", SCAN_READER_VERSION)

    @staticmethod
    def claims(rel: str) -> str | None:
        parts = rel.split("/")
        if not rel.lower().endswith((".json", ".sarif")):
            return None
        if parts[0] == "trivy":
            return "scan"
        if parts[0] == "ci" and len(parts) >= 4 and parts[1] == "github-actions" and parts[3] == "artifacts":
            return "ci-artifact"
        return None

    def plan(self, ctx: Context) -> Plan:
        # the content already loaded, by sha256: the same bytes under another name are not counted twice
        self.loaded = {s: p for p, s in ctx.con.execute(
            "SELECT path, sha256 FROM source_files WHERE kind IN ('scan','ci-artifact') AND status='ingested'"
        ).fetchall()}
        plan = Plan()
        for f in ctx.new_of(self.kinds):
            if f.size > ctx.max_file_bytes:
                plan.settled.append((f, "rejected", f"file is {f.size:,} bytes, over the limit of "
                                                    f"{ctx.max_file_bytes:,} (IFC_SCAN_MAX_FILE_MB)"))
            elif f.sha256 and f.sha256 in self.loaded:    # hashed when found (a changed known path): not parsed
                plan.settled.append((f, "duplicate", self._duplicate(f)))
            else:
                plan.units.append(Unit(f.rel, [f], (f.abspath, f.size, f.sha256 or None)))
        self.rereading: dict[str, str] = {}       # path -> its stored sha256
        self.alias_updates: dict[tuple[str, str], list[str]] = {}      # (scan_id, vulnerability_id) -> CVE ids
        if ctx.reread_all(self):
            self._plan_reread(ctx, plan)
        return plan

    def _plan_reread(self, ctx: Context, plan: Plan) -> None:
        """The files stored by an older scan reader and still in the landing zone unchanged: read again."""
        stored = {p: s for s, p in self.loaded.items()}        # the path each stored content was loaded from
        again = [f for f in ctx.all_of(self.kinds) if f.rel not in ctx.new_paths and f.rel in stored]
        if again:
            row = ctx.con.execute("SELECT value FROM derived_meta WHERE key = 'scan_reader_version'").fetchone()
            ctx.progress(f"ingest: the scan reader changed (version {row[0] if row else 'unrecorded'} -> "
                         f"{SCAN_READER_VERSION}): reading {len(again)} stored scan files again")
        for f in again:
            self.rereading[f.rel] = stored[f.rel]
            plan.units.append(Unit(f.rel, [f], (f.abspath, f.size, None)))

    def _duplicate(self, f) -> str:
        return f"same content (sha256) as {self.loaded[f.sha256]}: not counted twice"

    def store(self, ctx: Context, unit: Unit, reading: ScanRead) -> int:
        (f,) = unit.files
        if f.rel in self.rereading:
            return self._store_again(ctx, f, reading)
        f.sha256 = reading.sha256
        if f.sha256 and f.sha256 in self.loaded:
            ctx.record(f, "duplicate", self._duplicate(f))
            return 0
        if reading.status != "ok":
            ctx.record(f, "unreadable" if reading.status == "unreadable" else "rejected", reading.reason)
            return 0
        try:
            for s in reading.scans:
                check_dates(s, ctx.now)
        except Rejected as exc:
            ctx.record(f, "rejected", str(exc))
            return 0
        self._add_scans(ctx, f, reading)
        self.loaded[f.sha256] = f.rel
        ctx.record(f, "ingested")
        return f.size

    def _store_again(self, ctx: Context, f, reading: ScanRead) -> int:
        """A stored file read by the new reader: what version 2 adds (each vulnerability's CVE aliases) is kept
        for one update at the end (`finish`); the stored rows are otherwise what version 1 read. A file that no
        longer reads as it did (other bytes, now unreadable) keeps its rows as they are."""
        sha = self.rereading[f.rel]
        if reading.status != "ok" or reading.sha256 != sha:
            return 0
        alias_column = self.tables["scan_vulnerabilities"].index("cve_aliases") - 1    # rows lack scan_id
        id_column = self.tables["scan_vulnerabilities"].index("vulnerability_id") - 1
        for i, scan in enumerate(reading.scans):
            for row in scan.vulnerabilities:
                if row[alias_column]:
                    self.alias_updates[(f"{sha[:32]}-{i}", row[id_column])] = list(row[alias_column])
        return 0

    def finish(self, ctx: Context) -> None:
        if not self.alias_updates:
            return
        ctx.batch.start(f"CVE aliases of {len(self.alias_updates)} stored vulnerabilities (scan reader "
                        f"{SCAN_READER_VERSION})")
        keys = list(self.alias_updates)
        ctx.batch.deletes.append((
            "UPDATE scan_vulnerabilities SET cve_aliases = u.aliases FROM (SELECT unnest(?::VARCHAR[]) AS scan_id, "
            "unnest(?::VARCHAR[]) AS vulnerability_id, unnest(?::VARCHAR[][]) AS aliases) AS u "
            "WHERE scan_vulnerabilities.scan_id = u.scan_id AND scan_vulnerabilities.vulnerability_id = u.vulnerability_id",
            ([k[0] for k in keys], [k[1] for k in keys], list(self.alias_updates.values()))))

    @staticmethod
    def _add_scans(ctx: Context, f, reading: ScanRead) -> None:
        run_folder = f.rel.split("/")[2] if f.kind == "ci-artifact" else None
        ci_run_id = int(run_folder) if run_folder is not None and re.match(r"^\d+$", run_folder) else None
        for i, s in enumerate(reading.scans):
            scan_id = f"{f.sha256[:32]}-{i}"
            ctx.batch.add("scans", (scan_id, f.sha256, f.rel, i, s.format, s.schema_version, s.trivy_version,
                                    s.artifact_name, s.artifact_type, s.lineage, s.image_id, s.repo_digests,
                                    s.repo_tags, s.created_at, f.mtime, ci_run_id, s.image_created, s.os_family,
                                    s.os_name, s.lists_suppressed, len(s.vulnerabilities), len(s.misconfigurations),
                                    len(s.secrets), len(s.licenses)))
            for t, rows in zip(ROW_TABLES, (s.vulnerabilities, s.misconfigurations, s.secrets, s.licenses)):
                if rows:
                    ctx.batch.extend(t, [(scan_id, *r) for r in rows])
