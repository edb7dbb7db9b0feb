"""The weekly report in real headless Chromium (Debian's package; .ci/run installs it), network disabled."""

import csv
import json
import re
import shutil
import subprocess
from datetime import date, datetime
from pathlib import Path

import pytest

from ifc_scan.kpis.stage import POPULATION_COLUMNS

from ifc_scan_tests.scenario import Scenario, vuln

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
         # no network: every host resolves nowhere and any proxied fetch goes to a closed port
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--enable-logging=stderr", "--v=0"]
PWNED = "document.title='PWNED'"


def chromium(tmp_path, *args, timeout=120):
    if not CHROMIUM:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.pipeline import publish_weeks
    from ifc_scan.policy import load_policy
    from ifc_scan.warehouse.db import connect
    tmp = tmp_path_factory.mktemp("browser")
    sc = Scenario(tmp)
    evil = vuln(f"CVE-<script>{PWNED}</script>", f'"><img src=x onerror="{PWNED}">', "CRITICAL")
    evil["Title"] = "javascript:alert(1) <style>body{display:none}</style> =cmd|' /C calc'!A0 \x1b[31m"
    sc.registry_scan("A", datetime(2026, 3, 2, 2), [evil, vuln("CVE-2026-1", "openssl", "HIGH")])
    sc.ci_run("B", datetime(2026, 3, 3, 10), scan_t=datetime(2026, 3, 3, 10, 5), vulns=[evil],
              push_t=datetime(2026, 3, 3, 10, 10), deploy_t=datetime(2026, 3, 3, 12))
    sc.registry_scan("B", datetime(2026, 3, 4, 2), [evil])
    ingest(sc.landing, tmp / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    with connect(tmp / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        publish_weeks(con, policy, [date(2026, 3, 2)], tmp / "reports", landing=str(sc.landing))
    return tmp / "reports" / "2026-W10"


def test_report_draws_every_chart_without_console_errors_and_prints(report, tmp_path):
    url = (report / "report.html").as_uri()
    r = chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", url)
    dom = r.stdout
    charts = re.findall(r'<div id="chart-(\w+)"', dom)
    assert charts == ["open_trend", "mttr_trend", "coverage_trend", "degree_trend", "flow_trend", "severity_mix"]
    assert dom.count('class="main-svg"') >= 2 * len(charts)   # plotly draws two SVG layers per chart
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console                            # no script error, no CSP violation
    shot = Path(__file__).resolve().parents[1] / "reports" / "browser-test-2026-W10.png"
    shot.parent.mkdir(exist_ok=True)        # a fresh clone has no reports/ (Chromium would write nothing)
    r = chromium(tmp_path, "--window-size=1300,3000", "--virtual-time-budget=15000", f"--screenshot={shot}", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    pdf = tmp_path / "report.pdf"
    chromium(tmp_path, "--virtual-time-budget=15000", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", url)
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000


def test_hostile_scan_text_shows_escaped_and_executes_nothing(report, tmp_path):
    r = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", (report / "report.html").as_uri())
    dom = r.stdout
    assert "<title>Container image scanning report 2026-W10</title>" in dom     # no payload ran
    assert "PWNED</title>" not in dom
    assert '<img src="x"' not in dom and "<style>body" not in dom               # no element injected
    assert f"CVE-&lt;script&gt;{PWNED}&lt;/script&gt;" in dom                   # the text is shown, escaped
    assert "javascript:alert(1)" in dom and 'href="javascript:' not in dom


def test_headline_figures_and_counts_match_kpis_json_and_csvs(report):
    html = (report / "report.html").read_text()
    k = json.loads((report / "kpis.json").read_text())
    assert re.search(r'CRITICAL in production</div>\s*<div class="v">(\d+)', html).group(1) == \
        str(k["critical_in_prod"]["count"])
    # the verdict at the top is the control table's: NOT COMPLIANT exactly when a control fails; each failing
    # control is named once, under the requirement that makes it fail, and links to its row
    from ifc_scan.report.html import anchor
    failing = [c for c in k["controls"] if c["status"] == "fail"]
    verdict = re.search(r'<section id="verdict"[^>]*>\s*<h2>([^<]+)</h2>', html).group(1)
    assert verdict.startswith(f'{k["week"]}: {"NOT COMPLIANT" if failing else "COMPLIANT"}')
    banner = html[html.index('<section id="verdict"'):html.index('<nav id="toc"')]
    reqs = re.findall(r'<li id="req-.*?</li>', banner, re.S)
    for c in failing:
        name = f'{c["framework"]} {c["id"]}'
        link = f'href="#{anchor("ctl", name)}">{name}</a>'
        assert any(link in r for r in reqs) and all(r.count(link) <= 1 for r in reqs), name
        assert f'<tr id="{anchor("ctl", name)}">' in html
    assert f'{k["new_findings"]["total"]})</h3>' in html and f'{k["open_backlog"]["total"]} open)' in html
    with open(report / "findings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert re.search(r"Findings \((\d+) open at T", html).group(1) == str(len(rows))
    with open(report / "exceptions.csv") as fh:      # no entry: the header alone, so tools still see the columns
        assert fh.read().splitlines() == [",".join(POPULATION_COLUMNS["exceptions"])]
    assert "No exception snapshot is in force." in html
    with open(report / "deploys.csv", newline="") as fh:
        deploys = list(csv.DictReader(fh))
    assert f"Production deploys this week ({len(deploys)})" in html and len(deploys) == 1


@pytest.fixture(scope="module")
def demo_week(tmp_path_factory):
    """A typical week: the demo's last week after 8 weeks of history (about 20 findings, 5 deploys)."""
    from ifc_scan.demo.generator import generate
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.pipeline import publish_weeks
    from ifc_scan.policy import load_policy
    from ifc_scan.warehouse.db import connect
    tmp = tmp_path_factory.mktemp("demo-week")
    generate(tmp / "landing", weeks=8, seed=7, end=date(2026, 11, 30))
    ingest(tmp / "landing", tmp / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    with connect(tmp / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        from ifc_scan.kpis.stage import data_weeks
        weeks = data_weeks(con, policy)
        publish_weeks(con, policy, weeks, tmp / "reports", landing=str(tmp / "landing"))
    return tmp / "reports" / "2026-W48"


def test_a_typical_week_prints_on_at_most_7_a4_pages_with_its_chart_data(demo_week, tmp_path):
    url = (demo_week / "report.html").as_uri()
    pdf = tmp_path / "week.pdf"
    chromium(tmp_path, "--virtual-time-budget=15000", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", url)
    data = pdf.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert 1 <= pages <= 7, pages   # 6 before issue 31 added the known-exploited section and the fix-first table
    # no printed text under 9 pt: every font size (Tf, in CSS px) is 12 px or more, and the page is not shrunk to
    # fit (Chromium draws CSS px at 300/96 = 3.125 device units each; a page wider than A4 gets a smaller factor)
    import zlib
    streams = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            streams.append(zlib.decompress(m.group(1)))
        except zlib.error:
            continue
    sizes = [float(x) for t in streams for x in re.findall(rb"/F\d+ ([\d.]+) Tf", t)]
    assert sizes and min(sizes) >= 12, sorted(set(sizes))[:5]
    # each page: the y-flip to 300 dpi, then the page box's scale (the main content's)
    content_scale = {float(x) for t in streams for x in re.findall(rb"-\.23999999 0 [\d.]+ cm\nq\n([\d.]+) 0 0 \1 ", t)}
    assert content_scale == {3.125}, content_scale
    # landscape A4 (842 x 595 pt)
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    assert box and float(box.group(1)) > float(box.group(2))


def test_each_section_has_its_own_view_and_screenshot(demo_week, tmp_path):
    """report.html#only-<id> shows that section alone: one screenshot per section, kept in
    reports/test-artifacts/ for a reviewer."""
    html = (demo_week / "report.html").read_text()
    ids = re.findall(r'<section id="([a-z0-9-]+)"', html)
    assert {"verdict", "headline", "production", "coverage", "exceptions", "by-image", "findings-section",
            "trends", "controls", "data-quality"} <= set(ids)
    out = Path(__file__).resolve().parents[1] / "reports" / "test-artifacts" / "report-sections"
    out.mkdir(parents=True, exist_ok=True)
    for sid in ids:
        shot = out / f"{demo_week.name}-{sid}.png"
        chromium(tmp_path, "--window-size=1440,1100", "--virtual-time-budget=8000", f"--screenshot={shot}",
                 (demo_week / "report.html").as_uri() + f"#only-{sid}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", sid
    # the single-section view hides the others: its DOM after scripts ran still holds every section
    # (nothing is removed), so the page stays complete for search and print
    dom = chromium(tmp_path, "--virtual-time-budget=8000", "--dump-dom",
                   (demo_week / "report.html").as_uri() + "#only-coverage").stdout
    assert 'id="coverage"' in dom and 'id="findings-section" style="display: none;"' in dom


def test_the_demo_weeks_verdicts_agree_with_their_control_tables(demo_week, report):
    assert "no previous week" in (report / "report.html").read_text()      # the scenario has one week of evidence
    for week in sorted(p for p in demo_week.parent.iterdir() if re.fullmatch(r"\d{4}-W\d\d", p.name)):
        k = json.loads((week / "kpis.json").read_text())
        html = (week / "report.html").read_text()
        failing = [c for c in k["controls"] if c["status"] == "fail"]
        verdict = re.search(r'<section id="verdict"[^>]*>\s*<h2>([^<]+)</h2>', html).group(1)
        if k["freshness"]["no_new_evidence"]:        # D23: nothing received is its own verdict, said first
            assert verdict.startswith(f'{k["week"]}: NO NEW EVIDENCE - no evidence received since'), week.name
            continue
        assert verdict.startswith(f'{k["week"]}: {"NOT COMPLIANT" if failing else "COMPLIANT"}'), week.name
        if failing:
            assert f"{len(failing)} of {len(k['controls'])} controls fail" in verdict
    # the headline cards name the previous week's figure (the scenario's only week: "no previous week")
    weeks = sorted(p.name for p in demo_week.parent.iterdir() if re.fullmatch(r"\d{4}-W\d\d", p.name))
    last = (demo_week.parent / weeks[-1] / "report.html").read_text()
    prev = json.loads((demo_week.parent / weeks[-2] / "kpis.json").read_text())
    assert "no previous week" not in last
    assert f'{weeks[-2]}: {prev["critical_in_prod"]["count"]}</div>' in last


def test_the_period_pack_opens_offline_and_prints(demo_week, tmp_path):
    from ifc_scan.report.period import publish_period
    from ifc_scan.report.period_figures import period_bounds
    from ifc_scan.report.signing import load_or_create
    reports = demo_week.parent
    key = load_or_create(tmp_path / "keys" / "k.pem")     # the demo weeks are not signed: the pack is
    out, pack, _failed, _stamp = publish_period(reports, *period_bounds("2026-10", "2026-11"), signing_key=str(key.path),
                                                verify=False, sample_size=3, seed=7)
    url = (out / "period.html").as_uri()
    r = chromium(tmp_path, "--virtual-time-budget=8000", "--dump-dom", url)
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    # one strip cell per week for every control, each titled with its week and status
    assert r.stdout.count('class="s s-') == len(pack.figures["controls"]) * len(pack.weeks) + \
        len(pack.figures["targets"]) * len(pack.weeks)
    # readable in black and white: each cell carries its status as a symbol, not only a colour
    symbol = {"pass": "✓", "fail": "✗", "partial": "◐", "nodata": "–"}
    cells = re.findall(r'<td class="s s-(\w+)" title="[^"]*">([^<]*)</td>', r.stdout)
    assert len(cells) == r.stdout.count('class="s s-') and all(symbol[c] == text for c, text in cells), cells[:5]
    # tables as a reader writes dates and booleans (the demo's deploys and approvals have both)
    shown = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|head)\b.*?</\1>", "", r.stdout, flags=re.S))
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", shown) and not re.search(r"<td>\s*(True|False)\s*</td>", r.stdout)
    assert pack.populations["deploys"] and "<td>yes</td>" in r.stdout
    pdf = tmp_path / "period.pdf"
    chromium(tmp_path, "--virtual-time-budget=8000", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", url)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    if shutil.which("pdftotext"):       # the symbols are printed as text (a font has them), not lost
        import subprocess
        first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True).stdout
        assert "✗" in first and "✓" in first and "1. Controls, week by week" in first
        second = subprocess.run(["pdftotext", "-f", "2", "-l", "2", str(pdf), "-"], capture_output=True, text=True).stdout
        assert second.lstrip().startswith("UNVERIFIED PACK (--no-verify)")     # the stamp on every printed page
