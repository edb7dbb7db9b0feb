"""SARIF 2.1.0 written by Trivy (`--format sarif`, trivy-action's default for code scanning).

SARIF carries less than Trivy JSON: no CreatedAt, no Status; the package and versions live only in
the message text, and rule ids changed over time ("[HIGH] CVE-x", "CVE-x/pkg", "CVE-x").
"""

from __future__ import annotations

import re

from ifc_scan.ingest.model import ParsedScan, Rejected, as_text, norm_severity
from ifc_scan.ingest.trivy_json import image_lineage, misconf_row, secret_row, vuln_row
from ifc_scan.lineage import digest_of

_FIELD = re.compile(r"^(Package|Installed Version|Vulnerability|Severity|Fixed Version|Link|Type|Message|Artifact)[: ]\s*(.*)$", re.M)
_LEVEL_SEVERITY = {"error": "HIGH", "warning": "MEDIUM", "note": "LOW", "none": "UNKNOWN"}


def severity_of_score(score) -> str | None:
    """A rule's `security-severity` as Trivy writes it (and GitHub reads it): 9.0 and above CRITICAL, 7.0
    HIGH, 4.0 MEDIUM, above 0 LOW, 0 UNKNOWN; None when absent or not a number."""
    try:
        value = float(str(score))
    except (TypeError, ValueError):
        return None
    if value != value:      # NaN
        return None
    return ("CRITICAL" if value >= 9.0 else "HIGH" if value >= 7.0 else "MEDIUM" if value >= 4.0
            else "LOW" if value > 0 else "UNKNOWN")


def is_sarif(doc) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("runs"), list) and (
        "sarif" in str(doc.get("$schema", "")).lower() or str(doc.get("version", "")).startswith("2."))


def _fields(text: str) -> dict:
    return {k: v.strip() for k, v in _FIELD.findall(text or "")}


def read_trivy_sarif(doc: dict) -> list[ParsedScan]:
    scans = []
    for run in doc["runs"]:
        driver = ((run or {}).get("tool") or {}).get("driver") or {}
        if str(driver.get("name", "")).lower() != "trivy":
            raise Rejected(f"SARIF from {driver.get('name') or 'an unnamed tool'!s:.60}, not from Trivy")
        props = run.get("properties") if isinstance(run.get("properties"), dict) else {}
        scan = ParsedScan(format="trivy-sarif", trivy_version=as_text(driver.get("version"), 40),
                          artifact_name=as_text(props.get("imageName"), 1000), image_id=digest_of(props.get("imageID")),
                          repo_tags=[t for t in props.get("repoTags") or [] if isinstance(t, str)],
                          repo_digests=[d for d in props.get("repoDigests") or [] if isinstance(d, str)])
        scan.artifact_type = "container_image" if scan.image_id else None
        rules = driver.get("rules") if isinstance(driver.get("rules"), list) else []
        for res in run.get("results") or []:
            if not isinstance(res, dict):
                continue
            idx = res.get("ruleIndex")
            rule = rules[idx] if isinstance(idx, int) and 0 <= idx < len(rules) and isinstance(rules[idx], dict) else {}
            rule_id = str(res.get("ruleId") or rule.get("id") or "")
            msg = _fields(((res.get("message") or {}).get("text")) or "")
            helpf = _fields(((rule.get("help") or {}).get("text")) or "")
            info = {**helpf, **msg}
            m = re.match(r"^\[(\w+)\]\s*(\S+)$", rule_id)  # v0.10 template era
            if m:
                info.setdefault("Severity", m.group(1))
                rule_id = m.group(2)
            pkg = info.get("Package")
            if "/" in rule_id and not pkg:  # v0.17: "CVE-x/pkg"
                rule_id, pkg = rule_id.split("/", 1)
            rule_id = rule_id.split("/", 1)[0]
            severity = (info.get("Severity") or severity_of_score((rule.get("properties") or {}).get("security-severity"))
                        or _LEVEL_SEVERITY.get(str(res.get("level") or "warning"), "UNKNOWN"))
            locs = res.get("locations") or [{}]
            phys = (locs[0] or {}).get("physicalLocation") or {}
            target = ((phys.get("artifactLocation") or {}).get("uri"))
            region = phys.get("region") or {}
            kind = str(rule.get("name") or "")
            if "Misconfiguration" in kind or info.get("Type") and not pkg:
                scan.misconfigurations.append(misconf_row(target, "config", info.get("Type"), {
                    "ID": rule_id, "Title": (rule.get("shortDescription") or {}).get("text"),
                    "Message": info.get("Message"), "Severity": severity, "Status": "FAIL",
                    "PrimaryURL": rule.get("helpUri"),
                    "CauseMetadata": {"StartLine": region.get("startLine"), "EndLine": region.get("endLine")}}))
            elif "Secret" in kind:
                scan.secrets.append(secret_row(target, {"RuleID": rule_id, "Severity": severity,
                                                        "Title": (rule.get("shortDescription") or {}).get("text"),
                                                        "StartLine": region.get("startLine"), "EndLine": region.get("endLine")}))
            else:
                scan.vulnerabilities.append(vuln_row(target, "lang-pkgs" if "Language" in kind else "os-pkgs", None, {
                    "VulnerabilityID": rule_id, "PkgName": pkg, "InstalledVersion": info.get("Installed Version"),
                    "FixedVersion": info.get("Fixed Version") or None, "Severity": norm_severity(severity),
                    "Title": (rule.get("shortDescription") or {}).get("text"), "PrimaryURL": rule.get("helpUri")}))
        scan.lineage = image_lineage(scan.repo_tags, scan.repo_digests, scan.artifact_name) if (
            scan.image_id or scan.repo_tags or scan.repo_digests) else None
        scans.append(scan)
    if not scans:
        raise Rejected("SARIF file with no runs")
    return scans
