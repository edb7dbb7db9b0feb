"""`trivy k8s` reports and Trivy Operator CRDs. Each workload (or CRD) becomes one scan whose
lineage is the workload (`k8s:<cluster>/<namespace>/<kind>/<name>`), since a cluster report has no
single image."""

from __future__ import annotations

from ifc_scan.ingest.model import ParsedScan, Rejected, as_text, norm_severity
from ifc_scan.ingest.trivy_json import add_results, misconf_row, secret_row, vuln_row
from ifc_scan.lineage import lineage_of
from ifc_scan.timeutil import BadTimestamp, parse_ts

OPERATOR_API = "aquasecurity.github.io"


def is_k8s_report(doc) -> bool:
    return isinstance(doc, dict) and "ClusterName" in doc and "SchemaVersion" not in doc


def is_operator_doc(doc) -> bool:
    if isinstance(doc, dict):
        if str(doc.get("apiVersion", "")).startswith(OPERATOR_API):
            return True
        if isinstance(doc.get("items"), list) and doc["items"] and is_operator_doc(doc["items"][0]):
            return True
        return bool(doc) and all(k.endswith("." + OPERATOR_API) for k in doc)
    if isinstance(doc, list):
        return bool(doc) and all(isinstance(d, dict) and is_operator_doc(d) for d in doc)
    return False


def read_k8s_report(doc: dict) -> list[ParsedScan]:
    cluster = str(doc.get("ClusterName") or "")
    resources = []
    for key in ("Resources", "Vulnerabilities", "Misconfigurations"):
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise Rejected(f"trivy k8s report: {key} is not a list")
        resources.extend(value)
    scans = []
    for i, res in enumerate(resources):
        if not isinstance(res, dict):
            raise Rejected(f"trivy k8s report: resource {i} is not an object")
        workload = "/".join(str(res.get(k) or "") for k in ("Namespace", "Kind", "Name"))
        scan = ParsedScan(format="trivy-k8s", artifact_name=as_text(workload, 500), artifact_type="k8s_resource",
                          lineage=f"k8s:{cluster}/{workload}".lower())
        add_results(scan, res.get("Results"), where=f"resource {workload}")
        scans.append(scan)
    return scans


def _operator_items(doc) -> list[dict]:
    if isinstance(doc, list):
        return [d for item in doc for d in _operator_items(item)]
    if "apiVersion" in doc:
        return [doc]
    if isinstance(doc.get("items"), list):
        return [d for item in doc["items"] for d in _operator_items(item)]
    return [d for value in doc.values() if isinstance(value, list) for d in _operator_items(value)]


def read_operator(doc) -> list[ParsedScan]:
    scans = []
    for crd in _operator_items(doc):
        kind = crd.get("kind")
        meta = crd.get("metadata") if isinstance(crd.get("metadata"), dict) else {}
        report = crd.get("report") if isinstance(crd.get("report"), dict) else {}
        labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
        workload = "/".join(str(labels.get(f"trivy-operator.resource.{k}") or "") for k in ("namespace", "kind", "name"))
        container = labels.get("trivy-operator.container.name")
        if container:
            workload += f"/{container}"
        try:
            created = parse_ts(report.get("updateTimestamp") or meta.get("creationTimestamp"))
        except BadTimestamp as exc:
            raise Rejected(f"Trivy Operator {kind}: bad timestamp ({exc})") from None
        scanner = report.get("scanner") if isinstance(report.get("scanner"), dict) else {}
        scan = ParsedScan(format=f"trivy-operator-{str(kind).lower()}", artifact_type="k8s_resource",
                          artifact_name=as_text(workload or meta.get("name"), 500), created_at=created,
                          trivy_version=as_text(scanner.get("version"), 40),
                          lineage=f"k8s:{workload or meta.get('name')}".lower())
        if kind == "VulnerabilityReport":
            art = report.get("artifact") if isinstance(report.get("artifact"), dict) else {}
            reg = report.get("registry") if isinstance(report.get("registry"), dict) else {}
            ref = "/".join(x for x in (reg.get("server"), art.get("repository")) if x)
            if ref:
                scan.artifact_name = as_text(f"{ref}:{art.get('tag')}" if art.get("tag") else ref, 500)
                scan.artifact_type = "container_image"
                scan.lineage = lineage_of(ref)
                if art.get("digest"):
                    scan.repo_digests = [f"{ref}@{art['digest']}"]
            for v in report.get("vulnerabilities") or []:
                if isinstance(v, dict):
                    scan.vulnerabilities.append(vuln_row(v.get("target"), "os-pkgs" if not v.get("pkgPath") else "lang-pkgs", None, {
                        "VulnerabilityID": v.get("vulnerabilityID"), "PkgName": v.get("resource"),
                        "PkgPath": v.get("pkgPath"), "InstalledVersion": v.get("installedVersion"),
                        "FixedVersion": v.get("fixedVersion"), "Severity": v.get("severity"),
                        "Title": v.get("title"), "PrimaryURL": v.get("primaryLink"),
                        "Status": v.get("status"), "References": v.get("links"),
                        "CVSS": {"operator": {"V3Score": v.get("score")}} if v.get("score") is not None else None,
                    }))
        elif kind in ("ConfigAuditReport", "ClusterConfigAuditReport", "InfraAssessmentReport", "ClusterInfraAssessmentReport"):
            for c in report.get("checks") or []:
                if isinstance(c, dict):
                    scan.misconfigurations.append(misconf_row(workload, "config", "kubernetes", {
                        "ID": c.get("checkID"), "Title": c.get("title"), "Message": "; ".join(map(str, c.get("messages") or [])),
                        "Resolution": c.get("remediation"), "Severity": c.get("severity"),
                        "Status": "PASS" if c.get("success") else "FAIL"}))
        elif kind == "ExposedSecretReport":
            for s in report.get("secrets") or []:
                if isinstance(s, dict):
                    scan.secrets.append(secret_row(s.get("target"), {
                        "RuleID": s.get("ruleID"), "Category": s.get("category"), "Severity": norm_severity(s.get("severity")),
                        "Title": s.get("title"), "Match": s.get("match")}))
        elif kind in ("ClusterComplianceReport",):
            continue  # a summary of checks already reported by the other CRDs: nothing of its own to store
        else:
            raise Rejected(f"Trivy Operator resource of kind {kind!r} is not read by ifc_scan")
        scans.append(scan)
    if not scans and _operator_items(doc):
        raise Rejected("Trivy Operator compliance report only: it summarises other reports and holds no findings")
    return scans
