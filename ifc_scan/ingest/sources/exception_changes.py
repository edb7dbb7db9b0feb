"""approvals/<scope>/<...>/<commit>.json: the change records of the exception files (who changed which
line, in which pull request, approved by whom). Lines are traced across a scope's records, so a new,
changed or departed record re-reads (re-traces) its whole scope; a scope whose records all left loses
its rows."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ifc_scan.ingest import approvals as approvals_reader
from ifc_scan.ingest import exceptions as exc_reader
from ifc_scan.ingest.approvals import ChangeRecord, LineVersion
from ifc_scan.ingest.sources.base import Context, EvidenceSource, Plan, ReadEach, Removal, Unit

TABLES = ("exception_changes", "exception_reviews", "exception_line_versions")


class ScopeRead(NamedTuple):
    records: list[tuple[str, ChangeRecord | None, str | None]]   # (path, record, or why it was not read)
    lines: list[LineVersion]


def read_scope(files: list[tuple[str, str]]) -> ScopeRead:
    """A scope's change records [(path, abspath)] -> each record (or its rejection) and the traced lines."""
    out, records = [], []
    for rel, abspath in files:
        try:
            rec = approvals_reader.parse_change_record(Path(abspath).read_bytes().decode("utf-8-sig"), rel)
        except (approvals_reader.RecordRejected, UnicodeDecodeError) as exc:
            out.append((rel, None, f"exception change record not read: {exc}"))
            continue
        out.append((rel, rec, None))
        records.append(rec)
    return ScopeRead(out, approvals_reader.trace_scope(records))


def _scope_deletes(scope: str) -> list[tuple[str, tuple]]:
    return [(f"DELETE FROM {table} WHERE scope=?", (scope,)) for table in TABLES]


class ExceptionChanges(EvidenceSource):
    name = "exception change records"
    unit_name = "exception scopes"
    folder = "approvals/"
    kinds = ("approval",)
    replaces = "its whole scope (every record of the scope is traced again)"
    tables = {
        "exception_changes": ["scope", "commit_sha", "file", "path", "source", "repository", "landed_at", "landed_by",
                              "committed_at", "author", "author_email", "pr_number", "pr_url", "title", "deleted",
                              "content_sha256", "source_path", "signature_status", "signature_keys"],
        "exception_reviews": ["scope", "commit_sha", "reviewer", "email", "state", "submitted_at", "via"],
        "exception_line_versions": list(LineVersion._fields)}
    read = ReadEach(read_scope)
    reader_version = ("exception_reader_version", exc_reader.READER_VERSION)

    @staticmethod
    def claims(rel: str) -> str | None:
        parts = rel.split("/")
        return "approval" if parts[0] == "approvals" and len(parts) == 4 and rel.endswith(".json") else None

    def plan(self, ctx: Context) -> Plan:
        by_scope: dict[str, list] = {}
        for f in ctx.all_of(self.kinds):
            by_scope.setdefault(f.rel.split("/")[1], []).append(f)
        stored = {r[0]: r[1] for r in ctx.con.execute(
            "SELECT scope, list(source_path ORDER BY source_path) FROM exception_changes GROUP BY scope").fetchall()}
        removals = [Removal(f"approvals/{scope} (removed)", _scope_deletes(scope))     # every record of the scope left
                    for scope in sorted(set(stored) - set(by_scope))]
        # a record added or changed (new path or bytes), or one the stored trace read that left (moved aside);
        # a rejected record stays out of the stored list without making every ingest re-trace its scope
        retrace = {s for s, fs in by_scope.items()
                   if ctx.reread_all(self) or any(f.rel in ctx.new_paths for f in fs)
                   or set(stored.get(s, ())) - {f.rel for f in fs}}
        return Plan(removals=removals, units=[
            Unit(f"approvals/{scope}", by_scope[scope], ([(f.rel, f.abspath) for f in by_scope[scope]],), key=scope)
            for scope in sorted(retrace)])

    def store(self, ctx: Context, unit: Unit, reading: ScopeRead) -> int:
        scope, batch = unit.key, ctx.batch
        batch.deletes += _scope_deletes(scope)
        for f, (_, rec, reason) in zip(unit.files, reading.records):
            if rec is None:
                ctx.record_if_new(f, "rejected", reason)
                continue
            c, pr = rec.commit, rec.pull_request
            batch.add("exception_changes", (scope, c.sha, rec.file, rec.path, rec.source, rec.repository,
                                            rec.landed_at, rec.landed_by, c.committed_at, rec.author,
                                            c.author_email, pr.number if pr else None, pr.url if pr else None,
                                            rec.title, rec.deleted, rec.content_sha256, f.rel,
                                            c.signature.status if c.signature else "none",
                                            c.signature.good_keys if c.signature else []))
            for r in rec.reviews:
                batch.add("exception_reviews", (scope, c.sha, r.reviewer, r.email, r.state.upper(),
                                                r.submitted_at, r.via))
            ctx.record_if_new(f, "ingested")
        for lv in reading.lines:
            batch.add("exception_line_versions", tuple(lv))
        return 0
