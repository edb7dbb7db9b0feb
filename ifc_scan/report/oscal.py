"""A week's control results as an OSCAL 1.1 Assessment Results document (oscal/assessment-results.json).

A rendering of what the weekly stage stored, never a computation: kpis.json's `controls` become one
observation each (its method, the conditions it checked, links to the CSV rows and the input files it
rests on), a control that fails, is partial or has no data becomes a finding per OSCAL control id (no
data is never a pass: `not-satisfied`, reason `other`), and each open finding past its SLA in
findings.csv becomes a risk. Controls are named by the ids of ifc_scan/controls/oscal-component-definition.json:
NIST SP 800-53 by the official OSCAL catalog's ids, the frameworks with no official OSCAL catalog by
ids of our own (the component definition, published beside the results, maps them).

UUIDs are uuid5 of the week, the revision and the item, so re-rendering the same revision (as
`ifc-scan verify` does) gives the same bytes. Links: `../findings.csv#row=N` (RFC 7111: row 1 is the
header), `../kpis.json#/controls/I` (a JSON pointer); input files are back-matter resources whose
rlink is their path in the landing zone (manifest.json's landing_zone) with their sha256.
"""

from __future__ import annotations

import json
import uuid
from functools import lru_cache
from importlib import resources

OSCAL_VERSION = "1.1.3"
AR_FILE = "oscal/assessment-results.json"
COMPONENT_FILE = "oscal/component-definition.json"
PROP_NS = "https://ifc-scan.invalid/ns/oscal"
UUID_NS = uuid.UUID("2b0c6a57-8f3e-5d41-a7a9-0c1f4e6b9d23")
STATE = {"pass": ("satisfied", "pass"), "fail": ("not-satisfied", "fail"),
         "partial": ("not-satisfied", "other"), "no-data": ("not-satisfied", "other")}
# the population a control's evidence key is counted in (kpis.json's key prefix -> CSV)
EVIDENCE_CSV = {"coverage": "coverage.csv", "sla": "findings.csv", "mttr_hours": "findings.csv",
                "new_findings": "findings.csv", "deploys": "deploys.csv", "exceptions": "exceptions.csv",
                "exception_approvals": "exceptions.csv", "cadence": "coverage.csv", "inputs_manifest_sha256": "manifest.json",
                "exploitation": "findings.csv", "open_backlog": "findings.csv"}


@lru_cache(maxsize=1)
def component_definition_bytes() -> bytes:
    return resources.files("ifc_scan.controls").joinpath("oscal-component-definition.json").read_bytes()


@lru_cache(maxsize=1)
def control_map() -> dict:
    """(framework, catalog id) -> [OSCAL control id], from the component definition's props."""
    doc = json.loads(component_definition_bytes())["component-definition"]
    out: dict = {}
    for impl in doc["components"][0]["control-implementations"]:
        for req in impl["implemented-requirements"]:
            props = {p["name"]: p["value"] for p in req["props"]}
            out.setdefault((props["framework"], props["framework-control-id"]), []).append(req["control-id"])
    return out


def component_uuid() -> str:
    return json.loads(component_definition_bytes())["component-definition"]["components"][0]["uuid"]


def _prop(name: str, value) -> dict:
    return {"name": name, "ns": PROP_NS, "value": str(value)}


class _Ids:
    """uuid5 of (week, revision, item): the same item of the same revision always gets the same UUID."""

    def __init__(self, week: str, revision: int):
        self.prefix = f"{week}/r{revision}/"

    def __call__(self, item: str) -> str:
        return str(uuid.uuid5(UUID_NS, self.prefix + item))


class _RowIndex:
    """The first row of a population whose fields equal the given values (compared as text), looked up in
    a dict built once per population and set of fields: a scan of every row for each item a control names
    was quadratic in the week's findings (30 s for a week of 6,000 findings)."""

    def __init__(self, populations: dict):
        self.pop, self.built = populations, {}

    def __call__(self, key: str, **match) -> int | None:
        fields = tuple(sorted(match))
        index = self.built.get((key, fields))
        if index is None:
            index = {}
            for i, r in enumerate(self.pop.get(key, [])):
                index.setdefault(tuple(str(r.get(k)) for k in fields), i)
            self.built[(key, fields)] = index
        return index.get(tuple(str(match[k]) for k in fields))


class _Evidence:
    """Links to CSV rows, and the input files cited, collected as back-matter resources."""

    def __init__(self, ids: _Ids, populations: dict, inputs: list[dict], week_href: str = "../"):
        self.ids, self.pop, self.week_href = ids, populations, week_href    # week_href: the week's folder
        self.sha = {e["path"]: e["sha256"] for e in inputs}
        self.resources: dict[str, dict] = {}
        self.row_index = _RowIndex(populations)

    def row(self, csv_name: str, key: str, what: str, **match) -> list[dict]:
        i = self.row_index(key, **match)
        return [] if i is None else [{"href": f"{self.week_href}{csv_name}#row={i + 2}",
                                      "description": f"{what}: {csv_name} row {i + 2}"}]

    def input_file(self, ref: str | None, what: str, sha256: str | None = None) -> list[dict]:
        """`ref`: a landing-zone path, optionally with ':<line>' (a log line); `sha256`: its digest as a CSV
        row records it, for a period pack (whose weeks' input lists are not at hand)."""
        if not ref:
            return []
        path = ref if ref in self.sha else ref.rsplit(":", 1)[0]
        rid = self.ids("input/" + path)
        if rid not in self.resources:
            rlink = {"href": path, "media-type": "application/octet-stream"}
            if self.sha.get(path) or sha256:
                rlink["hashes"] = [{"algorithm": "SHA-256", "value": self.sha.get(path) or sha256}]
            self.resources[rid] = {"uuid": rid, "title": f"input file {path}", "rlinks": [rlink],
                                   "remarks": "Path relative to the landing zone named in manifest.json (landing_zone)."}
        return [{"href": f"#{rid}", "description": f"{what}: input file {ref}"}]

    def for_item(self, item: dict) -> list[dict]:
        """The CSV row and input file behind one item a failed condition names (kpis.json controls[].items)."""
        kind = item["kind"]
        if kind == "finding":
            m = {"vulnerability_id": item["id"], "lineage": item["lineage"], "pkg_name": item["pkg"], "due_at": item["due_at"]}
            i = self.row_index("findings", **m)
            row = self.pop["findings"][i] if i is not None else {}
            return (self.row("findings.csv", "findings", f"finding {item['id']}", **m)
                    + self.input_file(row.get("source_file"), "last scan listing it", row.get("source_sha256")))
        if kind == "deploy":
            return (self.row("deploys.csv", "deploys", f"deploy run {item['run_id']}", run_id=item["run_id"],
                             digest=item["digest"]) + self.input_file(item.get("evidence"), "deploy log"))
        if kind == "exception":     # item["file"]: exceptions/<scope>/<snapshot date>/<file>
            _, scope, snapshot, name = item["file"].split("/", 3)
            m = {"scope": scope, "snapshot_date": snapshot, "file": name, "line": item["line"]}
            i = self.row_index("exceptions", **m)
            sha = self.pop["exceptions"][i].get("sha256") if i is not None else None
            return (self.row("exceptions.csv", "exceptions", f"exception {item['id']}", **m)
                    + self.input_file(item["file"], f"exception {item['id']} line {item['line']}", sha))
        if kind == "build":
            return self.input_file(item.get("evidence"), f"build run {item['run_id']}")
        return []


def _observation(ids: _Ids, ev: _Evidence, index: int, control: dict, as_of: str) -> dict:
    name = f"{control['framework']} {control['id']}"
    conditions = [f"not met: {c}" for c in control["failed"]] + [f"no data: {c}" for c in control["no_data"]]
    links = [{"href": f"{ev.week_href}kpis.json#/controls/{index}", "description": f"the evaluation of {name} in kpis.json"}]
    for key in control["evidence"]:
        target = EVIDENCE_CSV.get(key.split(".")[0])
        if target and all(link["href"] != f"{ev.week_href}{target}" for link in links):
            links.append({"href": f"{ev.week_href}{target}", "description": f"the population behind {key}"})
    for item in control["items"]:
        links += ev.for_item(item)
    return {"uuid": ids(f"observation/control/{index}"), "title": f"{name}: {control['status']}",
            "description": (f"{control['intent']} Rule of ifc_scan's control catalog, evaluated automatically over the "
                            f"week's evidence ({', '.join(control['evidence'])}). "
                            + ("; ".join(conditions) if conditions else "Every condition met.")),
            "props": [_prop("framework", control["framework"]), _prop("framework-control-id", control["id"]),
                      _prop("edition", control["edition"]), _prop("status", control["status"]),
                      _prop("strength", control["strength"])],
            "methods": ["TEST"], "types": ["control-objective"],
            "subjects": [{"subject-uuid": component_uuid(), "type": "component"}],
            "relevant-evidence": links, "collected": as_of,
            **({"remarks": control["limitation"]} if control.get("limitation") else {})}


def _risks(ids: _Ids, ev: _Evidence, findings: list[dict], as_of: str) -> tuple[list[dict], list[dict], dict]:
    """One risk (and the observation it rests on) per open finding past its SLA; key -> risk uuid."""
    risks, observations, by_key = [], [], {}
    for i, f in enumerate(findings):
        if f["state"] != "overdue":
            continue
        what = f"{f['vulnerability_id']} ({f['severity']}) in {f['pkg_name']} of {f['lineage']}"
        obs = {"uuid": ids(f"observation/finding/{f['finding_id']}"), "title": f"{what}: open past its SLA",
               "description": f"Open at {as_of}, due {f['due_at']} ({f['days_overdue']} days overdue).",
               "methods": ["TEST"], "types": ["finding"], "collected": as_of,
               "relevant-evidence": ev.row("findings.csv", "findings", "the finding", finding_id=f["finding_id"])
               + ev.input_file(f.get("source_file"), "last scan listing it", f.get("source_sha256"))}
        rid = ids(f"risk/{f['finding_id']}")
        risks.append({"uuid": rid, "title": f"{what} past its SLA",
                      "description": f"{f.get('title') or f['vulnerability_id']} (detected {f['detected_at']}).",
                      "statement": f"A {f['severity']} vulnerability stays open past the remediation deadline the policy sets.",
                      "props": [_prop("severity", f["severity"]), _prop("days-overdue", f["days_overdue"])],
                      "status": "open", "deadline": f["due_at"],
                      "related-observations": [{"observation-uuid": obs["uuid"]}]})
        observations.append(obs)
        by_key[(f["vulnerability_id"], f["lineage"], f["pkg_name"], f["due_at"])] = rid
    return risks, observations, by_key


def _findings(ids: _Ids, controls: list[dict], risk_by_key: dict) -> list[dict]:
    out = []
    for index, c in enumerate(controls):
        if c["status"] == "pass":
            continue
        state, reason = STATE[c["status"]]
        risks = sorted({risk_by_key[k] for k in ((i["id"], i["lineage"], i["pkg"], i["due_at"])
                                                 for i in c["items"] if i["kind"] == "finding") if k in risk_by_key})
        for cid in control_map().get((c["framework"], c["id"]), []):
            out.append({"uuid": ids(f"finding/{index}/{cid}"), "title": f"{c['framework']} {c['id']}: {c['status']}",
                        "description": "; ".join([f"not met: {x}" for x in c["failed"]] + [f"no data: {x}" for x in c["no_data"]]),
                        "target": {"type": "objective-id", "target-id": f"{cid}_obj",
                                   "status": {"state": state, "reason": reason}},
                        "related-observations": [{"observation-uuid": ids(f"observation/control/{index}")}],
                        **({"related-risks": [{"risk-uuid": r} for r in risks]} if risks else {})})
    return out


def _result(ids: _Ids, ev: _Evidence, kpis: dict, populations: dict) -> dict:
    """One week's OSCAL result: its controls' observations and findings, its risks."""
    week, as_of, controls = kpis["week"], kpis["as_of"], kpis["controls"]
    observations = [_observation(ids, ev, i, c, as_of) for i, c in enumerate(controls)]
    risks, risk_obs, risk_by_key = _risks(ids, ev, populations.get("findings", []), as_of)
    reviewed = sorted({cid for c in controls for cid in control_map().get((c["framework"], c["id"]), [])})
    findings = _findings(ids, controls, risk_by_key)
    return {"uuid": ids("result"), "title": f"Controls evaluated for {week}",
            "description": f"The week {kpis['period_start']} to {kpis['period_end']}, evidence as of {as_of}.",
            "start": kpis["period_start"], "end": kpis["period_end"],
            "reviewed-controls": {"control-selections": [{"include-controls": [{"control-id": c} for c in reviewed]}]},
            "observations": observations + risk_obs,
            **({"risks": risks} if risks else {}), **({"findings": findings} if findings else {})}


def _document(doc_uuid: str, plan_uuid: str, metadata: dict, results: list[dict], resources: list[dict],
              figures_href: str) -> bytes:
    plan = {"uuid": plan_uuid, "title": "Assessment plan: ifc_scan's control catalog and the policy in force",
            "description": "No separate OSCAL assessment plan exists: the controls and how each is evaluated are "
                           "ifc_scan's catalog, mapped to OSCAL control ids by the component definition beside this file.",
            "rlinks": [{"href": "component-definition.json", "media-type": "application/json"},
                       {"href": figures_href, "media-type": "application/json"}]}
    doc = {"assessment-results": {"uuid": doc_uuid, "metadata": {**metadata, "oscal-version": OSCAL_VERSION},
                                  "import-ap": {"href": f"#{plan_uuid}"}, "results": results,
                                  "back-matter": {"resources": [plan, *sorted(resources, key=lambda r: (r["title"], r["uuid"]))]}}}
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def assessment_results(kpis: dict, populations: dict, inputs: list[dict], *, revision: int, generated_at: str) -> bytes:
    """The OSCAL document's bytes for one revision of a week (deterministic for the same arguments)."""
    week = kpis["week"]
    ids = _Ids(week, revision)
    ev = _Evidence(ids, populations, inputs)
    result = _result(ids, ev, kpis, populations)
    metadata = {"title": f"ifc_scan weekly assessment results {week} (revision {revision})",
                "last-modified": generated_at, "version": f"{week}-r{revision}",
                "props": [_prop("week", week), _prop("revision", revision),
                          _prop("policy-version", kpis["policy"]["version"]),
                          _prop("inputs-manifest-sha256", kpis["inputs_manifest_sha256"])]}
    return _document(ids("document"), ids("resource/assessment-plan"), metadata, [result],
                     list(ev.resources.values()), "../kpis.json")


def oscal_files(kpis: dict, populations: dict, inputs: list[dict], *, revision: int, generated_at: str) -> dict[str, bytes]:
    """The files a week publishes under oscal/: the results and the control mapping they name."""
    return {AR_FILE: assessment_results(kpis, populations, inputs, revision=revision, generated_at=generated_at),
            COMPONENT_FILE: component_definition_bytes()}


def period_oscal_files(pack) -> dict[str, bytes]:
    """An audit-period pack's oscal/: one result per published week of the pack (report/period.py
    PeriodPack), its links into weeks/<week>/. Recomputed from the weekly files alone, so it carries no time
    of its own: last-modified is the newest as-of of its weeks; UUIDs are uuid5 of the period, each week
    and its revision, and the document's of the weekly manifests' sha256."""
    name = f"period {pack.start.isoformat()}_{pack.end.isoformat()}"
    results, resources = [], []
    for w in pack.published:
        pop = {"findings": w.findings, "deploys": w.deploys, "exceptions": w.exceptions, "coverage": w.coverage}
        ids = _Ids(f"{name}/{w.week}", w.revision or 1)
        ev = _Evidence(ids, pop, [], week_href=f"../weeks/{w.week}/")
        results.append(_result(ids, ev, w.kpis, pop))
        resources += ev.resources.values()
    top = _Ids(name, 0)
    weeks = ", ".join(f"{w.week} r{w.revision or 1}" for w in pack.published)
    metadata = {"title": f"ifc_scan assessment results for the period {pack.start} to {pack.end}",
                "last-modified": max(w.kpis["as_of"] for w in pack.published),
                "version": f"{pack.start.isoformat()}_{pack.end.isoformat()}", "remarks": f"Weeks: {weeks}."}
    doc = _document(top("document/" + ",".join(w.manifest_sha256 for w in pack.published)),
                    top("resource/assessment-plan"), metadata, results, resources, "../figures.json")
    return {AR_FILE: doc, COMPONENT_FILE: component_definition_bytes()}
