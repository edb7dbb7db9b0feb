"""ifc-scan: every pipeline step without the UI (same code paths as the Dagster assets).

Progress goes to stderr, results to stdout; the exit status is non-zero on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from datetime import date
from pathlib import Path

from ifc_scan.kpis.view import WeekKpis
from ifc_scan.settings import Settings


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def cmd_demo(a) -> int:
    from ifc_scan.demo.generator import generate
    stats = generate(a.out, weeks=a.weeks, seed=a.seed, end=date.fromisoformat(a.end), story=a.story)
    print(json.dumps({"landing": str(a.out), **stats}))
    return 0


def cmd_ingest(a) -> int:
    from ifc_scan.ingest.runner import ingest
    s = ingest(a.landing, a.warehouse, rehash=a.rehash)
    parquet = Settings.from_env().parquet_dir
    if parquet:
        from ifc_scan.warehouse.db import connect
        from ifc_scan.warehouse.parquet import publish_parquet
        with connect(a.warehouse) as con:
            publish_parquet(con, parquet)
    print(json.dumps({"files_seen": s.files_seen, "new": s.new_files, "ingested": s.ingested, "rejected": s.rejected,
                      "duplicates": s.duplicates, "ignored": s.ignored, "rows": dict(s.rows)}))
    if s.rejected:
        _err(f"{s.rejected} file(s) rejected; reasons are in the warehouse table ingest_errors and in the report")
    return 0


def cmd_report(a) -> int:
    from ifc_scan.kpis.stage import data_weeks
    from ifc_scan.lifecycle.store import derive_lifecycle, lifecycle_is_current
    from ifc_scan.policy import load_policy
    from ifc_scan.progress import waiting
    from ifc_scan.pipeline import publish_weeks
    from ifc_scan.timeutil import parse_week
    policy = load_policy(a.policy)
    parquet = Settings.from_env().parquet_dir
    with _report_warehouse(a) as (con, loaded):
        if not lifecycle_is_current(con, policy):   # built once per ingest (or policy change), not per report
            _err("report: building the finding lifecycle from the warehouse")
            with waiting("report: finding lifecycle", _err):
                counts = derive_lifecycle(con, policy)
            _err("report: lifecycle of " + ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in counts.as_dict().items()))
        all_weeks = data_weeks(con, policy)
        weeks = all_weeks if a.all else [parse_week(a.week)]
        source = None
        if parquet:   # KPIs read from the Parquet publication (same SQL), written back to the warehouse
            from ifc_scan.warehouse.parquet import connect_parquet, publish_parquet
            publish_parquet(con, parquet)
            source = connect_parquet(parquet)
        statuses = publish_weeks(con, policy, weeks, a.reports, landing=str(Path(a.landing).resolve()), source=source,
                                 first_week=all_weeks[0] if all_weeks else None, signing_key=a.signing_key or None,
                                 new_key=a.new_key, rotate_key=a.rotate_key, progress=_err)
    if loaded is not None:      # each week says which table snapshots it read
        from ifc_scan.warehouse.iceberg import IcebergConfig, record_week_tables
        from ifc_scan.report.writer import sha256_bytes
        cfg = IcebergConfig.from_settings(Settings.from_env())
        for st in statuses:
            record_week_tables(a.reports, st["week"], cfg, loaded, sha256_bytes((Path(st["path"]) / "kpis.json").read_bytes()))
    for s in statuses:
        v = WeekKpis(s["kpis"])
        print(json.dumps({"week": s["week"], "status": s["status"], "revision": s.get("revision"), "path": s["path"],
                          "verdict": v.verdict, "failing_controls": [f"{c['framework']} {c['id']}" for c in v.failing_controls],
                          "critical_in_prod": v.critical_in_prod, "build_gate_pct": v.build_gate["pct"],
                          "nightly_pct": v.nightly["pct"], "mttr_critical": v.mttr_mean("CRITICAL"),
                          "mttr_high": v.mttr_mean("HIGH")}))
    return 0


@contextlib.contextmanager
def _report_warehouse(a):
    """(connection, loaded snapshots): the --warehouse file, or with --from-tables a fresh temporary warehouse
    holding the Iceberg tables' current snapshots (read once, at the start), which are returned."""
    from ifc_scan.warehouse.db import connect
    if not a.from_tables:
        with connect(a.warehouse, create=False) as con:
            yield con, None
        return
    import tempfile
    from ifc_scan.warehouse.iceberg import IcebergConfig, load_tables
    cfg = IcebergConfig.from_settings(Settings.from_env())
    with tempfile.TemporaryDirectory(prefix="ifc-tables-") as tmp, connect(Path(tmp) / "tables.duckdb") as con:
        loaded = load_tables(con, cfg)
        _err(f"report: {len(loaded)} tables loaded from Iceberg namespace {cfg.namespace} "
             f"({sum(t.rows for t in loaded):,} rows)")
        yield con, loaded


VERIFY_CHECKS = ("signature", "outputs", "attestation", "chain", "revision", "published", "inputs",
                 "recomputed")   # verify_week's, in order


def _skipped(reports: Path, r, log) -> dict[str, str]:
    """Checks of VERIFY_CHECKS that verify did not perform on a week, each with the reason: printed SKIP,
    never left out silently nor shown as 'ok'. `log`: the publication log read (None: there is none)."""
    from ifc_scan.report.publications import LOG_FILE
    from ifc_scan.report.signing import SIGNATURE_FILE
    out = {}
    ran = {c.name: c for c in r.checks}
    signature, published = ran.get("signature"), ran.get("published")
    if signature is not None and signature.ok and not (reports / r.week / SIGNATURE_FILE).is_file():
        out["signature"] = f"not signed: no {SIGNATURE_FILE} (published by a release without signing); " \
                           "pass --key to require a signature"
    if published is not None and published.ok and log is None:
        out["published"] = f"no {LOG_FILE} (published by a release without it): a rollback cannot be detected"
    if "signature" in out and "attestation" not in ran:
        out["attestation"] = "not signed: a week has its in-toto attestation only when it is signed"
    failed = [c.name for c in r.checks if not c.ok]
    for name in VERIFY_CHECKS:
        if name not in ran and name not in out:
            out[name] = (f"not run: the {', '.join(failed)} check{'s' if len(failed) > 1 else ''} failed first"
                         if failed else "not run: " + "; ".join(r.problems or ["an earlier step stopped"]))
            if name == "recomputed" and "manifest" not in failed:
                out[name] += " (figures recomputed from other inputs than the published ones would prove nothing)"
    return out


def _checklist(reports: Path, r, log) -> list[str]:
    """The week's checklist as verify prints it, with SKIP and the reason for each check not performed."""
    skipped = _skipped(reports, r, log)
    head, *rows = r.lines()
    named = [(c.name, f"  SKIP {c.name:<11} {skipped[c.name]}" if c.name in skipped else row)
             for c, row in zip(r.checks, rows)]
    named += [(n, f"  SKIP {n:<11} {why}") for n, why in skipped.items() if n not in {c.name for c in r.checks}]
    # in verify's order; a check outside VERIFY_CHECKS (the manifest could not be read) first
    named.sort(key=lambda nr: VERIFY_CHECKS.index(nr[0]) if nr[0] in VERIFY_CHECKS else -1)
    return [head, *(row for _, row in named)]


def cmd_verify(a) -> int:
    """Check published weeks (or an audit-period pack) without trusting their manifests; exit 1 on any difference."""
    from ifc_scan.progress import Progress
    from ifc_scan.report.publications import read_log, starts_with_copy
    from ifc_scan.report.signing import read_public_key
    from ifc_scan.report.verify import verify_publication, verify_week
    from ifc_scan.timeutil import parse_week, week_label
    trusted = [read_public_key(k) for k in a.key]
    if a.pack:
        from ifc_scan.report.period import verify_pack
        r = verify_pack(Path(a.pack), trusted)
        for problem in r.problems:
            _err(f"verify {a.pack}: {problem}")
        print(json.dumps({"verified": r.verified, "pack": r.as_dict()}) if a.json else "\n".join(r.lines()))
        return 0 if r.verified else 1
    reports = Path(a.reports)
    published = sorted(p.name for p in reports.iterdir() if p.is_dir() and (p / "manifest.json").is_file()) \
        if reports.is_dir() else []
    whole = bool(a.all)
    if a.all or a.range_from or a.range_to:
        lo = week_label(parse_week(a.range_from)) if a.range_from else ""
        hi = week_label(parse_week(a.range_to)) if a.range_to else "9999"
        weeks = [w for w in published if lo <= w <= hi]
        bounds = [lo or "0", hi]
    else:
        weeks = [week_label(parse_week(a.week))]
        bounds = weeks * 2
    log = read_log(reports, trusted)
    if log is not None and a.log_copy:
        log.problems += starts_with_copy(log, Path(a.log_copy))
    results = []
    if a.all or a.range_from or a.range_to:     # the set of weeks (and the index) against the publication log
        results.append(verify_publication(reports, log, bounds, whole))
    if not weeks and log is None:
        _err(f"verify: no published week in {reports} for that selection")
        return 1
    tick = Progress("verify: weeks checked", len(weeks), _err, every_s=0)    # a week takes seconds: each one
    for i, w in enumerate(weeks, 1):
        _err(f"verify: {w} ({i}/{len(weeks)})")
        results.append(verify_week(reports, w, Path(a.landing) if a.landing else None, progress=_err, trusted=trusted,
                                   log=log))
        tick.advance(w)
    weeks_checked = results[len(results) - len(weeks):]
    for r in results:
        for problem in r.problems:
            _err(f"verify {r.week}: {problem}")
        if not a.json:      # the weeks' checklists with SKIP lines; the publication log's as it is
            print("\n".join(_checklist(reports, r, log) if any(r is c for c in weeks_checked) else r.lines()))
    ok = all(r.verified for r in results) and bool(weeks)
    if a.json:
        print(json.dumps({"verified": ok, "weeks": [{**r.as_dict(), "skipped": _skipped(reports, r, log)}
                                                    for r in weeks_checked],
                          "publication": results[0].as_dict() if len(results) > len(weeks) else None}))
    else:
        print(f"{sum(r.verified for r in weeks_checked)}/{len(weeks_checked)} weeks verified")
    return 0 if ok else 1


def cmd_collect_github(a) -> int:
    from ifc_scan.collect.github import DEFAULT_WORKFLOWS, CollectError, collect
    try:
        s = collect(a.repo, a.landing, a.state, base_url=a.base_url, token_env=a.token_env,
                    workflows=tuple(a.workflow) or DEFAULT_WORKFLOWS, since=a.since,
                    artifact_pattern=a.artifact_pattern, log=_err)
    except CollectError as exc:
        _err(f"ifc-scan collect github: {exc}")
        return 1
    print(json.dumps(s.as_dict()))
    return 0


def cmd_collect_exceptions(a) -> int:
    from ifc_scan.collect.exception_history import CollectError, collect_exception_history, state_path_beside
    try:
        s = collect_exception_history(a.file or Settings.from_env().exceptions_files, a.landing,
                                      a.state or state_path_beside(Settings.from_env().collector_state),
                                      repo=a.repo or "", git=a.git or "", branch=a.branch or "",
                                      base_url=a.base_url, token_env=a.token_env, log=_err)
    except CollectError as exc:
        _err(f"ifc-scan collect exceptions: {exc}")
        return 1
    print(json.dumps(s.as_dict()))
    return 0


def cmd_collect_tickets(a) -> int:
    from ifc_scan.collect.github import CollectError
    from ifc_scan.collect.tickets import collect_github_issues, state_path_beside
    state = a.state or str(state_path_beside(Settings.from_env().collector_state))
    try:
        s = collect_github_issues(a.repo, a.landing, state, labels=a.label, query=a.query, base_url=a.base_url,
                                  token_env=a.token_env, log=_err)
    except CollectError as exc:
        _err(f"ifc-scan collect tickets: {exc}")
        return 1
    print(json.dumps(s))
    return 0


def cmd_collect_intel(a) -> int:
    """Exit 0: every source written or already there; 1: one failed or was refused (the other still written)."""
    from ifc_scan.collect.intel import as_dicts, collect_intel
    got = collect_intel(a.landing, kev_url=a.kev_url, epss_url=a.epss_url,
                        only=(a.only,) if a.only else ("kev", "epss"), log=_err, ca_file=a.ca_file)
    print(json.dumps(as_dicts(got)))
    return 1 if any(f.outcome in ("failed", "refused") for f in got) else 0


def cmd_deliver(a) -> int:
    from ifc_scan.deliver import Channels, DeliveryError, deliver_week
    from ifc_scan.policy import load_policy
    from ifc_scan.warehouse.db import connect
    policy = load_policy(a.policy)
    if not Channels.from_policy(policy).configured():
        _err("ifc-scan deliver: no channel configured (policy delivery: / IFC_SCAN_SMTP_HOST, IFC_SCAN_WEBHOOK_URL, "
             "IFC_SCAN_PAGERDUTY_ROUTING_KEY): nothing sent")
        return 0
    try:
        with connect(a.warehouse) as con:
            done = deliver_week(con, a.reports, a.week, policy, force=a.force, log=_err)
    except DeliveryError as exc:
        _err(f"ifc-scan deliver: {exc}")
        return 1
    print(json.dumps(done))
    return 1 if any(d["result"] == "failed" for d in done) else 0


def _instant(value: str | None):
    from datetime import datetime, timezone

    from ifc_scan.timeutil import day_start, parse_date, parse_ts
    if not value:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    return day_start(parse_date(value)) if len(value) == 10 else parse_ts(value)


def cmd_gate(a) -> int:
    """Exit 0: passed; 1: blocked (or, with --strict, an exception the policy forbids); 2: unusable input."""
    from ifc_scan.gate import UnusableInput, judge, load_kev, summary_lines
    from ifc_scan.policy import gate_blocks_kev, load_policy
    try:
        policy, at = load_policy(a.policy), _instant(a.at)
        kev = load_kev(a.kev, a.landing, at) if a.block_kev or gate_blocks_kev(policy) else None
        r = judge(a.report, a.ignorefile, policy, at, kev)
    except UnusableInput as exc:
        _err(f"ifc-scan gate: {exc}")
        return 2
    print(json.dumps(r.as_dict(), indent=1) if a.json else "\n".join(summary_lines(r)))
    return 0 if r.passed and not (a.strict and (r.exception_problems or r.refused_files)) else 1


def cmd_exceptions_lint(a) -> int:
    from ifc_scan.gate import UnusableInput, clean_cell, lint
    from ifc_scan.policy import load_policy
    try:
        out = lint(a.files, load_policy(a.policy), _instant(a.at), a.report)
    except UnusableInput as exc:
        _err(f"ifc-scan exceptions lint: {exc}")
        return 2
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        for p in out["problems"]:
            level = "warning" if p["rule"] == "unknown_severity" else "error"
            print(f"{p['file']}:{p['line'] or ''}: {level}: {clean_cell(p['id'])}: {clean_cell(p['message'])} [{p['rule']}]")
        print(f"{out['entries']} entries, {out['violations']} violation(s) at {out['at']}")
    return 1 if out["violations"] else 0


def cmd_exceptions_prune(a) -> int:
    from ifc_scan.gate import UnusableInput, clean_cell, prune
    try:
        removed = prune(a.file, _instant(a.at), a.output)
    except UnusableInput as exc:
        _err(f"ifc-scan exceptions prune: {exc}")
        return 2
    for r in removed:
        print(f"removed {a.file}:{r['line']}: {clean_cell(r['id'])} (expired {r['expiry']})")
    print(f"{len(removed)} expired entr{'y' if len(removed) == 1 else 'ies'} removed; written to {a.output or a.file}")
    return 0


def cmd_period(a) -> int:
    """The audit-period evidence pack from the published weeks of a period; exit 1 when a week fails verification
    (the pack then leaves it out and says so on every page) unless --allow-unverified asks for it as it is."""
    from ifc_scan.report.period import publish_period
    from ifc_scan.report.period_figures import period_bounds
    from ifc_scan.report.signing import read_public_key
    start, end = period_bounds(a.range_from, a.range_to)
    sample = {} if a.sample is None else {"sample_size": a.sample}     # else the pack's DEFAULT_SAMPLE
    out, pack, failed, stamp = publish_period(
        Path(a.reports), start, end, signing_key=a.signing_key, landing=Path(a.landing) if a.landing else None,
        trusted=[read_public_key(k) for k in a.key], verify=not a.no_verify, allow_unverified=a.allow_unverified,
        seed=a.seed, progress=_err, **sample)
    for week, why in failed.items():
        _err(f"period: {week} failed verification: {why}")
    if stamp:
        _err(f"period: {stamp}")
    print(json.dumps({"period": pack.figures["period"], "verdict": pack.figures["verdict"], "folder": str(out),
                      "zip": str(out.with_suffix(".zip")), "sample_seed": pack.sample["seed"],
                      "evidence_grade": stamp is None, "weeks_failed_verification": sorted(failed)}))
    return 1 if failed and not a.allow_unverified else 0


def cmd_run(a) -> int:
    """The main job: demo landing zone (if absent) and every week materialised through Dagster."""
    from ifc_scan.run_all import run_all
    return run_all(Settings.from_env(), make_demo=not a.no_demo, verbose=a.verbose)


# Help texts shared by several commands: one wording per option, the default shown as argparse resolves it.
LANDING = "landing zone folder the evidence is read from (default: %(default)s; IFC_SCAN_LANDING)"
WAREHOUSE = "DuckDB warehouse file (default: %(default)s; IFC_SCAN_WAREHOUSE)"
REPORTS = "folder of the published weekly reports (default: %(default)s; IFC_SCAN_REPORTS)"
POLICY = "policy YAML overriding ifc_scan/policy.yaml key by key (default: %(default)s; IFC_SCAN_POLICY)"
WEEK = "an ISO week, YYYY-Www in any case (2026-W10, 2026-w10), or its Monday's date (2026-03-02)"
JSON = "print one JSON document instead of text"
AT = "instant judged, RFC 3339 or YYYY-MM-DD (default: now)"
BASE_URL = "GitHub API root (default: %(default)s); GitHub Enterprise Server: https://HOST/api/v3"
TOKEN_ENV = "environment variable holding the GitHub token (default: %(default)s; never logged)"


def _week(value: str) -> str:
    """argparse type of every --week: the canonical label 'YYYY-Www', or a one-line error naming the value."""
    from ifc_scan.timeutil import parse_week, week_label
    try:
        return week_label(parse_week(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    from ifc_scan import __version__
    s = Settings.from_env()
    p = argparse.ArgumentParser(prog="ifc-scan", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                   help="print the version of ifc_scan and exit")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    _pipeline_commands(sub, s)
    _collect_commands(sub, s)
    _policy_commands(sub, s)
    _tables_commands(sub, s)
    return p


def _pipeline_commands(sub, s: Settings) -> None:
    d = sub.add_parser("demo", help="write a realistic demo landing zone")
    d.add_argument("--out", default=s.landing, help="empty or absent folder to write it to (default: %(default)s)")
    d.add_argument("--weeks", type=int, default=52, help="weeks of evidence (default: %(default)s)")
    d.add_argument("--seed", type=int, default=7, help="random seed: the same seed writes the same files (default: %(default)s)")
    d.add_argument("--end", default="2026-11-30", help="Monday the demo ends on (exclusive)")
    d.add_argument("--story", action="store_true",
                   help="weeks that tell a story (gaps, recovery, compliant weeks, an incident, recovery; at least 8 "
                        "weeks) instead of random ones; make run writes this one")
    d.set_defaults(fn=cmd_demo)
    i = sub.add_parser("ingest", help="load new landing-zone files into the warehouse")
    i.add_argument("--landing", default=s.landing, help=LANDING)
    i.add_argument("--warehouse", default=s.warehouse, help=WAREHOUSE)
    i.add_argument("--rehash", action="store_true",
                   help="read and hash every file (default: files with the path, size and mtime of a loaded one are skipped)")
    i.set_defaults(fn=cmd_ingest)
    r = sub.add_parser("report", help="compute KPIs and write weekly reports")
    r.add_argument("--landing", default=s.landing, help=LANDING)
    r.add_argument("--warehouse", default=s.warehouse, help=WAREHOUSE)
    r.add_argument("--reports", default=s.reports, help=REPORTS)
    r.add_argument("--policy", default=s.policy, help=POLICY)
    r.add_argument("--signing-key", default=s.signing_key,
                   help="Ed25519 key that signs each manifest (outside --reports and --landing); a missing key is an "
                        "error, except the default path's first use while no published week is signed")
    r.add_argument("--new-key", action="store_true", help="create the signing key (none may exist at that path)")
    r.add_argument("--rotate-key", action="store_true",
                   help="sign with a key other than the published weeks' (recorded in the chain and the publication log)")
    r.add_argument("--from-tables", action="store_true",
                   help="compute from the Iceberg tables' current snapshots (IFC_SCAN_ICEBERG_*) instead of --warehouse, "
                        "and record the snapshots read in <reports>/tables/<week>.json")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--week", type=_week, help=WEEK)
    g.add_argument("--all", action="store_true", help="every complete week from the first evidence to the last")
    r.set_defaults(fn=cmd_report)
    v = sub.add_parser("verify", help="check published weeks: outputs, chain, revisions, inputs, recomputation")
    v.add_argument("--reports", default=s.reports, help=REPORTS)
    vg = v.add_mutually_exclusive_group(required=True)
    vg.add_argument("--week", type=_week, help=WEEK)
    vg.add_argument("--all", action="store_true", help="every published week")
    vg.add_argument("--from", dest="range_from", type=_week, help="first week of a range (with --to); " + WEEK)
    vg.add_argument("--pack", help="an audit-period pack (its folder or its zip) instead of weeks")
    v.add_argument("--to", dest="range_to", type=_week, help="last week of a range (inclusive)")
    v.add_argument("--landing", default=None, help="landing zone (default: the one the manifest names)")
    v.add_argument("--json", action="store_true", help="one JSON document instead of the checklist")
    v.add_argument("--key", action="append", default=[],
                   help="trusted public key (PEM; repeatable across a key rotation): every manifest must be signed by one")
    v.add_argument("--log-copy", help="a copy of publications.log.jsonl kept outside the reports folder: the current "
                                      "log must begin with it (detects a truncated log hiding a rollback)")
    v.set_defaults(fn=cmd_verify)


def _collect_commands(sub, s: Settings) -> None:
    c = sub.add_parser("collect", help="pull evidence from a CI system into the landing zone")
    csub = c.add_subparsers(dest="source", required=True)
    gh = csub.add_parser("github", help="GitHub Actions runs, jobs, logs and Trivy artifacts")
    gh.add_argument("--repo", default=s.github_repo or None, required=not s.github_repo, help="OWNER/NAME")
    gh.add_argument("--landing", default=s.landing, help=LANDING)
    gh.add_argument("--state", default=s.collector_state, help="cursor file (outside the landing zone)")
    gh.add_argument("--base-url", default=s.github_api, help=BASE_URL)
    gh.add_argument("--token-env", default=s.github_token_env, help=TOKEN_ENV)
    gh.add_argument("--workflow", action="append", default=[], help="workflow file (repeatable; default image-scan.yml, ci.yml, cd.yml)")
    gh.add_argument("--since", help="only runs created on or after YYYY-MM-DD (default: the cursor)")
    gh.add_argument("--artifact-pattern", default="trivy-results-*",
                    help="glob of the artifact names downloaded as scan reports (default: %(default)s)")
    gh.set_defaults(fn=cmd_collect_github)
    ex = csub.add_parser("exceptions", help="history of the exception files (snapshots per change, approvals) "
                                            "from GitHub or a local git clone")
    where = ex.add_mutually_exclusive_group()
    where.add_argument("--repo", default=s.exceptions_repo or None, help="OWNER/NAME on GitHub (reviews of pull requests)")
    where.add_argument("--git", default=s.exceptions_git or None, help="a local git clone (approvals from Approved-by: trailers)")
    ex.add_argument("--file", action="append", default=[], metavar="PATH=SCOPE",
                    help="ignore file in the repository and its exception scope (repeatable; default .trivyignore=_global)")
    ex.add_argument("--branch", default=s.exceptions_branch or None,
                    help="branch the exceptions take effect from (default: main on GitHub, HEAD in a clone)")
    ex.add_argument("--landing", default=s.landing, help=LANDING)
    ex.add_argument("--state", help="state file (default: exception-history.json beside the run collector's)")
    ex.add_argument("--base-url", default=s.github_api, help=BASE_URL)
    ex.add_argument("--token-env", default=s.github_token_env, help=TOKEN_ENV)
    ex.set_defaults(fn=cmd_collect_exceptions)
    tk = csub.add_parser("tickets", help="GitHub issues (by label or search query) as ticket evidence; Jira: drop "
                                         "search answers or CSV exports in tickets/jira/<date>/")
    tk.add_argument("--repo", default=s.github_repo or None, required=not s.github_repo, help="OWNER/NAME")
    tk.add_argument("--label", default="security", help="issues with this label (comma-separated: all of them)")
    tk.add_argument("--query", help="a GitHub issue search query instead of --label (repo: is added)")
    tk.add_argument("--landing", default=s.landing, help=LANDING)
    tk.add_argument("--state", help="state file (default: tickets.json beside the run collector's)")
    tk.add_argument("--base-url", default=s.github_api, help=BASE_URL)
    tk.add_argument("--token-env", default=s.github_token_env, help=TOKEN_ENV)
    tk.set_defaults(fn=cmd_collect_tickets)
    it = csub.add_parser("intel", help="CISA's KEV catalog and FIRST's EPSS scores into enrichment/ (one file per day, "
                                       "checked before it is written)")
    it.add_argument("--landing", default=s.landing, help=LANDING)
    it.add_argument("--kev-url", default=s.kev_url, help="KEV catalog URL, https (default: CISA's feed; IFC_SCAN_KEV_URL)")
    it.add_argument("--epss-url", default=s.epss_url, help="EPSS scores URL, https (default: FIRST's current file; "
                                                           "IFC_SCAN_EPSS_URL)")
    it.add_argument("--only", choices=["kev", "epss"], help="fetch only this one")
    it.add_argument("--ca-file", help="trust this CA bundle (PEM) for the mirrors' certificates")
    it.set_defaults(fn=cmd_collect_intel)


def _policy_commands(sub, s: Settings) -> None:
    dl = sub.add_parser("deliver", help="send a published week by the configured email / webhook / PagerDuty")
    dl.add_argument("--week", type=_week, required=True, help="a week published under --reports: " + WEEK)
    dl.add_argument("--reports", default=s.reports, help=REPORTS)
    dl.add_argument("--warehouse", default=s.warehouse, help=WAREHOUSE + " (records each delivery)")
    dl.add_argument("--policy", default=s.policy or None, help=POLICY)
    dl.add_argument("--force", action="store_true", help="also a week that ended more than fresh_days ago")
    dl.set_defaults(fn=cmd_deliver)
    pe = sub.add_parser("period", help="audit-period evidence pack from the published weeks (reports/periods/)")
    pe.add_argument("--from", dest="range_from", required=True, type=str.upper,
                    help="YYYY-MM, YYYY-Www (any case) or YYYY-MM-DD")
    pe.add_argument("--to", dest="range_to", required=True, type=str.upper,
                    help="YYYY-MM, YYYY-Www (any case) or YYYY-MM-DD (inclusive)")
    pe.add_argument("--reports", default=s.reports, help=REPORTS)
    pe.add_argument("--landing", default=None, help="landing zone for verification (default: each manifest's)")
    pe.add_argument("--sample", type=int, help="items of each population in the auditor's sample (default 10)")
    pe.add_argument("--seed", type=int, help="sample seed (default: derived from the period's manifests)")
    pe.add_argument("--no-verify", action="store_true",
                    help="skip verifying the weeks (faster): the pack is stamped UNVERIFIED on every page")
    pe.add_argument("--allow-unverified", action="store_true",
                    help="build from weeks that fail verification too (stamped UNVERIFIED on every page; exit 0)")
    pe.add_argument("--key", action="append", default=[],
                    help="trusted public key (PEM; repeatable): every week must be signed by one to verify")
    pe.add_argument("--signing-key", default=s.signing_key,
                    help="the weeks' Ed25519 key, which signs the pack's manifest (must exist)")
    pe.set_defaults(fn=cmd_period)
    gt = sub.add_parser("gate", help="judge one Trivy report against the policy (exit 0 pass, 1 blocked, 2 unusable)")
    gt.add_argument("report", help="Trivy JSON (any shape the readers accept)")
    gt.add_argument("--ignorefile", action="append", default=[], help=".trivyignore, .trivyignore.yaml or OpenVEX (repeatable)")
    gt.add_argument("--policy", default=s.policy, help=POLICY)
    gt.add_argument("--at", help=AT)
    gt.add_argument("--json", action="store_true", help=JSON)
    gt.add_argument("--strict", action="store_true", help="also block on exceptions the policy forbids")
    gt.add_argument("--block-kev", action="store_true",
                    help="also block findings in CISA's KEV catalog, whatever their severity (policy gate: block_kev)")
    gt.add_argument("--kev", metavar="FILE", help="the KEV catalog (known_exploited_vulnerabilities.json; default: the "
                                                  "newest in the landing zone dated on or before --at)")
    gt.add_argument("--landing", default=s.landing, help=LANDING)
    gt.set_defaults(fn=cmd_gate)
    ex = sub.add_parser("exceptions", help="exception files: lint against the policy, prune expired entries")
    exsub = ex.add_subparsers(dest="action", required=True)
    el = exsub.add_parser("lint", help="exit 1 on a violation; each problem as file:line")
    el.add_argument("files", nargs="+", help=".trivyignore or .trivyignore.yaml files")
    el.add_argument("--report", help="a Trivy report giving the severities (for the CRITICAL limit)")
    el.add_argument("--policy", default=s.policy, help=POLICY)
    el.add_argument("--at", help=AT)
    el.add_argument("--json", action="store_true", help=JSON)
    el.set_defaults(fn=cmd_exceptions_lint)
    ep = exsub.add_parser("prune", help="write the file without its expired entries (comments and order kept)")
    ep.add_argument("file", help="the .trivyignore or .trivyignore.yaml to prune")
    ep.add_argument("--at", help=AT)
    ep.add_argument("--output", help="write here instead of in place")
    ep.set_defaults(fn=cmd_exceptions_prune)
    m = sub.add_parser("run", help="main job through Dagster: demo data if none, ingest, every week, reports")
    m.add_argument("--no-demo", action="store_true",
                   help="never write the demo landing zone (an empty landing zone then reports no week)")
    m.add_argument("--verbose", action="store_true", help="Dagster's DEBUG log and warnings")
    m.set_defaults(fn=cmd_run)


def cmd_tables(a) -> int:
    """publish: every warehouse table as an Iceberg commit; load: a state into the warehouse; verify: a week
    recomputed from the snapshots it recorded. One JSON line per table (or the week's checklist)."""
    from ifc_scan.warehouse.db import connect
    from ifc_scan.warehouse.iceberg import IcebergConfig, load_tables, publish_tables, read_week_record
    cfg = IcebergConfig.from_settings(Settings.from_env())
    if a.action == "verify":
        from ifc_scan.report.verify import verify_week_tables
        r = verify_week_tables(Path(a.reports), a.week, cfg)
        for problem in r.problems:
            _err(f"tables verify {a.week}: {problem}")
        print(json.dumps(r.as_dict()) if a.json else "\n".join(r.lines()))
        return 0 if r.verified else 1
    if a.action == "publish":
        with connect(a.warehouse, read_only=True, create=False) as con:
            done = publish_tables(con, cfg)
    else:
        snapshots = None
        if a.week:      # the snapshots the week read, in the namespace it read them from
            record = read_week_record(a.reports, a.week)
            snapshots, cfg = record["snapshots"], dataclasses.replace(cfg, namespace=record["namespace"])
        with connect(a.warehouse) as con:
            done = load_tables(con, cfg, snapshots)
    for t in done:
        print(json.dumps(t._asdict()))
    return 0


def _tables_commands(sub, s: Settings) -> None:
    t = sub.add_parser("tables", help="the warehouse as Iceberg tables many hosts can write (IFC_SCAN_ICEBERG_*; "
                                      "docs/deploy.md)")
    tsub = t.add_subparsers(dest="action", required=True)
    pub = tsub.add_parser("publish", help="commit every warehouse table (raw and derived) to the Iceberg catalog")
    pub.add_argument("--warehouse", default=s.warehouse, help=WAREHOUSE)
    ld = tsub.add_parser("load", help="replace the warehouse's rows by the tables' current snapshots, or by those "
                                      "a published week recorded (--week)")
    ld.add_argument("--warehouse", default=s.warehouse, help=WAREHOUSE)
    ld.add_argument("--week", type=_week, help="load the snapshots recorded in <reports>/tables/<week>.json")
    ld.add_argument("--reports", default=s.reports, help=REPORTS)
    vf = tsub.add_parser("verify", help="recompute a week from the snapshots it recorded; exit 1 on a difference")
    vf.add_argument("--week", type=_week, required=True, help=WEEK)
    vf.add_argument("--reports", default=s.reports, help=REPORTS)
    vf.add_argument("--json", action="store_true", help="one JSON document instead of the checklist")
    for p in (pub, ld, vf):
        p.set_defaults(fn=cmd_tables)


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    import duckdb
    try:
        return a.fn(a)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        _err(f"ifc-scan {a.cmd}: {exc}")
        return 2
    except OSError as exc:     # disk full, read-only folder, permission: one line, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        _err(f"ifc-scan {a.cmd}: {exc.strerror or exc}{where}")
        return 2
    except duckdb.IOException as exc:
        _err(f"ifc-scan {a.cmd}: the warehouse could not be written or read: {str(exc).splitlines()[0]}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
