"""ci/github-actions/<run>/: one GitHub Actions run as the collector saved it (run.json, jobs.json, the job
logs); the scan reports in its artifacts/ are the scans' kind. A new or changed file re-reads the whole
run, whose rows (by run_id) and problems replace the earlier reading's; a new CI reader version re-reads
every run. One run, one folder: a second folder claiming a run already read is rejected."""

from __future__ import annotations

import os
from collections import defaultdict

from ifc_scan.ingest.batch import UNREADABLE
from ifc_scan.ingest.gha_events import CiEvent
from ifc_scan.ingest.github_actions import CI_READER_VERSION, RunRead, load_patterns, read_run_folders
from ifc_scan.ingest.sources.base import Context, EvidenceSource, Plan, Unit

RUN_TABLES = ("ci_runs", "ci_jobs", "ci_steps", "ci_events", "ci_log_issues")
FAILED = {"rejected": "CI run {} not read: {}", "unreadable": "CI run {} not readable: {}",
          "error": "CI run {} not read (reader error {})"}


class CiRuns(EvidenceSource):
    name = "CI runs"
    unit_name = "CI run folders"
    folder = "ci/github-actions/"
    kinds = ("ci-run",)
    replaces = "the whole run (its rows by run_id and its recorded problems)"
    tables = {
        "ci_runs": ["run_id", "run_attempt", "workflow", "workflow_path", "event", "head_branch", "head_sha", "status",
                    "conclusion", "created_at", "run_started_at", "updated_at", "html_url", "source_path",
                    "unparsed_event_lines"],
        "ci_jobs": ["run_id", "job_id", "run_attempt", "name", "status", "conclusion", "started_at", "completed_at"],
        "ci_steps": ["run_id", "job_id", "number", "name", "status", "conclusion", "started_at", "completed_at"],
        "ci_events": list(CiEvent._fields),
        "ci_log_issues": ["run_id", "log_file", "line_no", "reason", "text"]}
    read = staticmethod(read_run_folders)
    reader_version = ("ci_reader_version", CI_READER_VERSION)
    parallel = True

    @staticmethod
    def claims(rel: str) -> str | None:
        parts = rel.split("/")
        if parts[0] != "ci" or len(parts) < 4 or parts[1] != "github-actions":
            return None
        if parts[3] == "artifacts" and rel.lower().endswith((".json", ".sarif")):
            return None           # a scan report (the scans' kind ci-artifact)
        return "ci-run"

    def plan(self, ctx: Context) -> Plan:
        run_files: dict[str, list] = defaultdict(list)
        for f in ctx.all_of(self.kinds):
            run_files[f.rel.split("/")[2]].append(f)
        load_patterns()     # a broken IFC_SCAN_CI_PATTERNS file stops the ingest here, before any run is read
        # which folder holds each stored run: a second folder with the same run_id is refused
        self.run_folders = {rid: os.path.basename(str(src)) for rid, src in ctx.con.execute(
            "SELECT run_id, source_path FROM ci_runs").fetchall()}
        reread = ctx.reread_all(self)
        if reread and self.run_folders:
            row = ctx.con.execute("SELECT value FROM derived_meta WHERE key = 'ci_reader_version'").fetchone()
            ctx.progress(f"ingest: the CI log reader changed (version {row[0] if row else 'unrecorded'} -> "
                         f"{CI_READER_VERSION}): reading all {len(run_files)} run folders again")
        return Plan(units=[Unit(f"ci/github-actions/{name}", fs, (str(ctx.landing / "ci" / "github-actions" / name),),
                                key=name)
                           for name, fs in sorted(run_files.items())
                           if reread or any(f.rel in ctx.new_paths for f in fs)])

    def store(self, ctx: Context, unit: Unit, reading: RunRead) -> int:
        run_name, fs = unit.key, unit.files
        if reading.status != "ok":
            why = FAILED[reading.status].format(run_name, reading.reason)
            for f in fs:
                ctx.record_if_new(f, UNREADABLE if reading.status == "unreadable" else "rejected", why)
            return 0
        res = reading.result
        run_id = res.run[0]
        owner = self.run_folders.get(run_id)
        if owner is not None and owner != run_name:      # another folder already holds this run
            for f in fs:
                ctx.record_if_new(f, "rejected", f"run.json says run {run_id}, which is already read from "
                                                 f"ci/github-actions/{owner}: one run, one folder")
            return 0
        self.run_folders[run_id] = run_name
        ctx.batch.deletes += [(f"DELETE FROM {t} WHERE run_id=?", (run_id,)) for t in RUN_TABLES]
        ctx.batch.add("ci_runs", res.run)
        for t, rows in (("ci_jobs", res.jobs), ("ci_steps", res.steps), ("ci_events", res.events),
                        ("ci_log_issues", res.issues)):
            ctx.batch.extend(t, rows)
        self._record_problems(ctx, unit, res)
        return unit.size

    @staticmethod
    def _record_problems(ctx: Context, unit: Unit, res) -> None:
        """The run's problems are this reading's: an earlier reading's rows go (a re-read after a late
        artifact or a new reader would otherwise list them twice)."""
        run_name, run_id = unit.key, res.run[0]
        errors = defaultdict(list)
        for relname, reason in res.errors:
            errors[relname].append(reason)
        ctx.batch.deletes.append(("DELETE FROM ingest_errors WHERE starts_with(path, ?)",
                                  (f"ci/github-actions/{run_name}/",)))
        for f in unit.files:
            sub = "/".join(f.rel.split("/")[3:])
            if f.rel in ctx.new_paths:
                if sub in errors:
                    ctx.record(f, "rejected", "; ".join(errors.pop(sub))[:1000])
                else:
                    ctx.record(f, "ingested")
            elif sub in errors:      # a file read before, read again with this run: its problems now
                ctx.batch.add("ingest_errors", (f.rel, f.sha256, f.kind, "; ".join(errors.pop(sub))[:1000]))
        for relname, reasons in errors.items():  # member-level problems (zip entries) of known files
            ctx.batch.add("ingest_errors", (f"ci/github-actions/{run_name}/{relname}", None, "ci-run",
                                            "; ".join(reasons)[:1000]))
            ctx.batch.add("ci_log_issues", (run_id, relname, None, "; ".join(reasons)[:1000], None))
