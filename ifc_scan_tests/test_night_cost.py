"""What one more night reads (issue 28): the weeks' span without loading every scan, the input catalog's
canonical text and its table brought up to date by difference, OSCAL's links to CSV rows by lookup. Each
gives the same answer as the slower way it replaced, on data where the two could differ."""

import json
from datetime import date, datetime

from ifc_scan_tests.scenario import Scenario, vuln


def test_a_catalog_entrys_text_is_the_canonical_json_of_the_manifest_hash():
    """manifest_hash hashes json.dumps(sort_keys, compact); the catalog writes the same text field by field.
    Paths are untrusted: quotes, backslashes, control characters and non-ASCII are escaped as json does."""
    from ifc_scan.kpis.stage import catalog_entry_json, manifest_hash
    # by hand: keys in sorted order, \" and \\ escaped, é as \u00e9, a tab as \t, no spaces
    assert catalog_entry_json('trivy/a"b\\é\t.json', "ab12", 7, "scan") == (
        '{"kind":"scan","path":"trivy/a\\"b\\\\\\u00e9\\t.json","sha256":"ab12","size":7}')
    for path, sha, size in (("x/\u2028\x00😀.json", None, None), ("inventory/deployable.yaml", "f" * 64, 0)):
        entry = {"path": path, "sha256": sha, "size": size, "kind": "inventory"}
        assert catalog_entry_json(path, sha, size, "inventory") == json.dumps(entry, sort_keys=True,
                                                                               separators=(",", ":"))
    import hashlib
    entries = [{"path": "a", "sha256": "1", "size": 1, "kind": "scan"}, {"path": "b", "sha256": "2", "size": 2, "kind": "ci-run"}]
    text = "[" + ",".join(catalog_entry_json(e["path"], e["sha256"], e["size"], e["kind"]) for e in entries) + "]"
    assert hashlib.sha256(text.encode()).hexdigest() == manifest_hash(entries)


def test_the_weeks_run_from_the_first_evidence_even_a_scan_dated_by_its_mtime(tmp_path):
    """data_weeks no longer loads every scan: scans with a CreatedAt and an ImageID are spanned in SQL, the
    others (dated by their CI step or file mtime, or imaged through an alias) are dated by the loader."""
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.kpis.stage import data_weeks
    from ifc_scan.lifecycle.observations import evidence_span, load
    from ifc_scan.policy import load_policy
    from ifc_scan.warehouse.db import connect
    s = Scenario(tmp_path)
    s.registry_scan("v1", datetime(2026, 3, 3, 2), [vuln("CVE-2026-1", "openssl", "HIGH")])
    s.registry_scan("v0", datetime(2026, 2, 10, 6), [], created_at=False)     # no CreatedAt: its mtime, a Tuesday
    s.registry_scan("v1", datetime(2026, 3, 19, 2), [])
    wh = tmp_path / "w.duckdb"
    ingest(s.landing, wh, progress=lambda m: None)
    with connect(wh) as con:
        assert evidence_span(con) == (datetime(2026, 2, 10, 6), datetime(2026, 3, 19, 2))
        obs = load(con, with_findings=False)
        assert evidence_span(con) == (obs.scans[0].observed_at, obs.scans[-1].observed_at)
        weeks = data_weeks(con, load_policy())
    # by hand: from the Monday of Tuesday 10 February to the Monday of Thursday 19 March, every Monday
    assert weeks[0] == date(2026, 2, 9) and weeks[-1] == date(2026, 3, 16) and len(weeks) == 6


def test_the_input_catalog_table_is_brought_to_the_entries_by_difference(tmp_path):
    """store() deletes only rows that are no longer entries and inserts only new ones: after rows were
    removed and altered in the table, it holds exactly the entries again, and rows already right stay."""
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.kpis.stage import InputCatalog
    from ifc_scan.lifecycle.observations import load
    from ifc_scan.warehouse.db import connect
    s = Scenario(tmp_path)
    for day in (3, 4, 5):
        s.registry_scan("v1", datetime(2026, 3, day, 2), [vuln("CVE-2026-1", "openssl", "HIGH")])
    wh = tmp_path / "w.duckdb"
    ingest(s.landing, wh, progress=lambda m: None)
    with connect(wh) as con:
        catalog = InputCatalog(con, load(con, with_findings=False))
        catalog.store(con)
        rows = con.execute("SELECT * FROM input_catalog ORDER BY path").fetchall()
        # the inventory (evidence from the start) and the three scans, each from its CreatedAt
        assert [(r[0], r[4]) for r in rows] == [("inventory/deployable.yaml", datetime.min),
                                                 ("trivy/registry/001-v1.json", datetime(2026, 3, 3, 2)),
                                                 ("trivy/registry/002-v1.json", datetime(2026, 3, 4, 2)),
                                                 ("trivy/registry/003-v1.json", datetime(2026, 3, 5, 2))]
        kept = con.execute("SELECT rowid FROM input_catalog WHERE path = 'trivy/registry/003-v1.json'").fetchone()
        con.execute("DELETE FROM input_catalog WHERE path = 'trivy/registry/001-v1.json'")
        con.execute("UPDATE input_catalog SET size = size + 1 WHERE path = 'trivy/registry/002-v1.json'")
        con.execute("INSERT INTO input_catalog VALUES ('trivy/registry/gone.json', 'x', 1, 'scan', '2026-03-01')")
        catalog.store(con)
        assert con.execute("SELECT * FROM input_catalog ORDER BY path").fetchall() == rows
        assert con.execute("SELECT rowid FROM input_catalog WHERE path = 'trivy/registry/003-v1.json'").fetchone() == kept


def test_an_oscal_link_names_the_first_csv_row_with_the_items_fields():
    """The row index answers as the scan of every row it replaced: the first row whose fields equal the
    item's, compared as text (a CSV row number is its index + 2: the header is row 1)."""
    from ifc_scan.report.oscal import _RowIndex
    findings = [{"vulnerability_id": "CVE-1", "lineage": "a", "pkg_name": "zlib", "due_at": "2026-03-01T00:00:00Z"},
                {"vulnerability_id": "CVE-2", "lineage": "a", "pkg_name": "zlib", "due_at": None},
                {"vulnerability_id": "CVE-2", "lineage": "a", "pkg_name": "zlib", "due_at": None},
                {"vulnerability_id": "CVE-3", "lineage": "b", "pkg_name": "curl", "due_at": "2026-03-02T00:00:00Z"}]
    deploys = [{"run_id": 17, "digest": "sha256:ab"}]
    rows = _RowIndex({"findings": findings, "deploys": deploys})
    assert rows("findings", vulnerability_id="CVE-2", lineage="a", pkg_name="zlib", due_at=None) == 1   # the first of two
    assert rows("findings", vulnerability_id="CVE-3", lineage="b", pkg_name="curl", due_at="2026-03-02T00:00:00Z") == 3
    assert rows("findings", vulnerability_id="CVE-3", lineage="a", pkg_name="curl", due_at="2026-03-02T00:00:00Z") is None
    assert rows("deploys", run_id="17", digest="sha256:ab") == 0       # 17 and "17" are the same text in a CSV
    assert rows("exceptions", scope="web") is None                     # a population the week does not have


def test_a_capped_warehouse_stores_and_checkpoints_weeks_whose_populations_exceed_the_cap(tmp_path, monkeypatch):
    """DuckDB's checkpoint pins every large string of a table it rewrites at once: 52 strings of 5 MB failed
    to checkpoint under a 200 MB cap, fatally. The weeks' populations are stored compressed, so 30 weeks of
    20,000 findings each (about 140 MB of JSON, over twice the cap) are stored, checkpointed and read back
    under a 64 MB cap."""
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.kpis.stage import WeekResult, WeeklyStage, load_week, store_weeks
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.policy import load_policy
    from ifc_scan.warehouse.db import connect
    monkeypatch.setenv("IFC_SCAN_DUCKDB_MEMORY", "64MB")
    s = Scenario(tmp_path)
    s.registry_scan("v1", datetime(2026, 3, 3, 2), [vuln("CVE-2026-1", "openssl", "HIGH")])
    wh, policy = tmp_path / "w.duckdb", load_policy()
    ingest(s.landing, wh, progress=lambda m: None)
    with connect(wh) as con:
        derive_lifecycle(con, policy)
        week = WeeklyStage(con, policy).compute(date(2026, 3, 2))
    row = week.populations["findings"][0]
    weeks = [WeekResult({**week.kpis, "week": f"2025-W{n:02d}"},
                        {**week.populations, "findings": [{**row, "finding_id": f"{n}-{i}", "title": f"lib{i % 400}: issue {i}"}
                                                          for i in range(20_000)]}, None, week.data_quality)
             for n in range(1, 31)]
    raw_mb = sum(len(json.dumps(w.populations)) for w in weeks) / 2**20
    assert raw_mb > 128
    with connect(wh) as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "61.0 MiB"   # 64 MB in MiB
        for lo in range(0, 30, 4):          # as compute_and_store stores a backfill: 4 weeks a transaction
            store_weeks(con, weeks[lo:lo + 4], policy)
        con.execute("CHECKPOINT")
    with connect(wh) as con:
        back = load_week(con, "2025-W17")
    assert back.populations == weeks[16].populations and len(back.populations["findings"]) == 20_000


def test_the_cyclic_collector_is_paused_for_a_block_and_restored_as_it_was():
    """A stage's bulk loading runs with the cyclic collector off (its full passes over an ever larger heap
    were 3 of the 7 s the weekly stage took to load three years); after it, the collector is on again only
    if it was on before, and with freeze=True what the block built is out of its passes (gc.freeze)."""
    import gc

    from ifc_scan.gcpause import cyclic_gc_paused
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    built = []
    with cyclic_gc_paused(freeze=True):
        built.extend([i] for i in range(1000))      # lists: always tracked by the collector
    assert gc.isenabled() and gc.get_freeze_count() >= frozen + 1000
    gc.unfreeze()
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()     # a caller that had it off keeps it off
    finally:
        gc.enable()
