"""Trivy JSON reports of every era: SchemaVersion 2 objects, objects without SchemaVersion,
the legacy list of results (before v0.20), and the literal `null`.

`trivy k8s` reports and Trivy Operator CRDs have their own reader (trivy_k8s.py).
"""

from __future__ import annotations

from functools import lru_cache

from ifc_scan.ingest.model import SEVERITIES, ParsedScan, Rejected, as_int, as_text, norm_severity
from ifc_scan.intel.aliases import report_cve_aliases
from ifc_scan.lineage import digest_of, lineage_of, looks_like_image_ref
from ifc_scan.timeutil import BadTimestamp, parse_ts

_SEVERITY_SET = frozenset(SEVERITIES)


@lru_cache(maxsize=65536)
def _ts_cached(value: str):
    try:
        return parse_ts(value)
    except BadTimestamp:
        return None


def _ts_or_none(value):
    """Lenient timestamp for informational fields (PublishedDate...): bad -> None. Cached: the same
    CVE dates recur in every nightly scan."""
    return _ts_cached(value) if isinstance(value, str) else None


def _score(entry):
    if isinstance(entry, dict):
        for key in ("V40Score", "V3Score", "V2Score"):
            score = entry.get(key)
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                return float(score)
    return None


def _cvss_score(cvss) -> float | None:
    """The NVD score if there is one, else the first vendor's (newest CVSS version first)."""
    if not isinstance(cvss, dict):
        return None
    score = _score(cvss.get("nvd"))
    if score is None:
        score = next((s for s in map(_score, cvss.values()) if s is not None), None)
    return score


def _s(value, limit):
    """as_text with a fast path for the common case, a plain string."""
    return value[:limit] if type(value) is str else as_text(value, limit)


def vuln_row(target, cls, typ, v: dict, suppressed=False, sup=(None, None, None)) -> tuple:
    get = v.get
    ident = get("PkgIdentifier")
    purl = ident.get("PURL") if isinstance(ident, dict) else None
    sev = get("Severity")
    vid = get("VulnerabilityID")
    return (
        _s(target, 500), cls, typ, _s(vid, 200), _s(get("PkgName"), 500),
        _s(get("PkgPath"), 1000) or "", _s(get("PkgID"), 500), _s(purl, 1000),
        _s(get("InstalledVersion"), 200), _s(get("FixedVersion"), 500), _s(get("Status"), 40),
        sev if sev in _SEVERITY_SET else norm_severity(sev), _s(get("SeveritySource"), 40),
        _s(get("Title"), 1000), _s(get("PrimaryURL"), 1000), _cvss_score(get("CVSS")),
        _ts_or_none(get("PublishedDate")), suppressed, *sup,
        # a CVE id is its own alias (NULL; an id merely starting CVE- matches nothing either way): only other
        # ids (GHSA, distribution advisories) have their references read
        None if type(vid) is str and vid.startswith("CVE-") else report_cve_aliases(vid, get("References"),
                                                                                   get("VendorIDs")),
    )


def misconf_row(target, cls, typ, m: dict, suppressed=False) -> tuple:
    cause = m.get("CauseMetadata") if isinstance(m.get("CauseMetadata"), dict) else {}
    return (
        as_text(target, 500), cls, as_text(typ or m.get("Type"), 100), as_text(m.get("ID"), 200),
        as_text(m.get("AVDID"), 200), as_text(m.get("Title"), 1000), as_text(m.get("Message"), 2000),
        as_text(m.get("Resolution"), 2000), norm_severity(m.get("Severity")), as_text(m.get("Status"), 40),
        as_text(m.get("PrimaryURL"), 1000), as_int(cause.get("StartLine")), as_int(cause.get("EndLine")),
        suppressed,
    )


def secret_row(target, s: dict, suppressed=False) -> tuple:
    return (
        as_text(target, 500), as_text(s.get("RuleID"), 200), as_text(s.get("Category"), 200),
        norm_severity(s.get("Severity")), as_text(s.get("Title"), 1000), as_int(s.get("StartLine")),
        as_int(s.get("EndLine")), as_text(s.get("Match"), 500), suppressed,
    )


def license_row(target, lic: dict, suppressed=False) -> tuple:
    conf = lic.get("Confidence")
    return (
        as_text(target, 500), as_text(lic.get("PkgName"), 500), as_text(lic.get("FilePath"), 1000),
        as_text(lic.get("Name"), 500), norm_severity(lic.get("Severity")), as_text(lic.get("Category"), 100),
        float(conf) if isinstance(conf, (int, float)) and not isinstance(conf, bool) else None,
        as_text(lic.get("Link"), 1000), suppressed,
    )


def _list(value, what: str, where: str) -> list:
    """Trivy omits empty lists and legacy output writes null; anything else must be a list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Rejected(f"{where}: {what} is a {type(value).__name__}, not a list")
    return value


def add_results(scan: ParsedScan, results, where: str = "Results") -> None:
    for i, res in enumerate(_list(results, "Results", where)):
        if not isinstance(res, dict):
            raise Rejected(f"{where}[{i}] is not an object")
        target, cls, typ = res.get("Target"), res.get("Class"), res.get("Type")
        for v in _list(res.get("Vulnerabilities"), "Vulnerabilities", f"{where}[{i}]"):
            if isinstance(v, dict):
                scan.vulnerabilities.append(vuln_row(target, cls, typ, v))
        for m in _list(res.get("Misconfigurations"), "Misconfigurations", f"{where}[{i}]"):
            if isinstance(m, dict):
                scan.misconfigurations.append(misconf_row(target, cls, typ, m))
        for s in _list(res.get("Secrets"), "Secrets", f"{where}[{i}]"):
            if isinstance(s, dict):
                scan.secrets.append(secret_row(target, s))
        for lic in _list(res.get("Licenses"), "Licenses", f"{where}[{i}]"):
            if isinstance(lic, dict):
                scan.licenses.append(license_row(target, lic))
        if "ExperimentalModifiedFindings" in res:
            scan.lists_suppressed = True
        for mf in _list(res.get("ExperimentalModifiedFindings"), "ExperimentalModifiedFindings", f"{where}[{i}]"):
            if not isinstance(mf, dict) or not isinstance(mf.get("Finding"), dict):
                continue
            f, kind = mf["Finding"], str(mf.get("Type", "")).lower()
            sup = (as_text(mf.get("Status"), 40), as_text(mf.get("Statement"), 2000), as_text(mf.get("Source"), 1000))
            if kind.startswith("vuln") or "VulnerabilityID" in f:
                scan.vulnerabilities.append(vuln_row(target, cls, typ, f, True, sup))
            elif kind.startswith("misconf"):
                scan.misconfigurations.append(misconf_row(target, cls, typ, f, True))
            elif kind.startswith("secret"):
                scan.secrets.append(secret_row(target, f, True))
            elif kind.startswith("licen"):
                scan.licenses.append(license_row(target, f, True))


def image_lineage(repo_tags, repo_digests, artifact_name) -> str | None:
    for ref in list(repo_tags or []) + list(repo_digests or []):
        if isinstance(ref, str) and looks_like_image_ref(ref):
            return lineage_of(ref)
    if artifact_name and looks_like_image_ref(artifact_name):
        return lineage_of(artifact_name)
    return None


def _metadata(scan: ParsedScan, meta: dict) -> None:
    if not isinstance(meta, dict):
        return
    scan.image_id = digest_of(meta.get("ImageID")) or scan.image_id
    tags = meta.get("RepoTags") if isinstance(meta.get("RepoTags"), list) else []
    digests = meta.get("RepoDigests") if isinstance(meta.get("RepoDigests"), list) else []
    scan.repo_tags = [str(t)[:500] for t in tags if isinstance(t, str)]
    scan.repo_digests = [str(d)[:500] for d in digests if isinstance(d, str)]
    osinfo = meta.get("OS") if isinstance(meta.get("OS"), dict) else {}
    scan.os_family, scan.os_name = as_text(osinfo.get("Family"), 100), as_text(osinfo.get("Name"), 100)
    cfg = meta.get("ImageConfig") if isinstance(meta.get("ImageConfig"), dict) else {}
    scan.image_created = _ts_or_none(cfg.get("created"))


def _created_at(value):
    try:
        return parse_ts(value)
    except BadTimestamp as exc:
        raise Rejected(f"CreatedAt is not a usable time ({exc})") from None


def read_trivy_json(doc) -> list[ParsedScan]:
    """Parsed JSON document -> scans. Raises Rejected with a reason when it is no Trivy report."""
    if doc is None:
        # `trivy` before v0.20 wrote `null` for an artifact with nothing to report.
        return [ParsedScan(format="trivy-json-legacy")]
    if isinstance(doc, list):
        if doc and not all(isinstance(r, dict) and ("Target" in r or "Vulnerabilities" in r) for r in doc):
            raise Rejected("a JSON list that is not a legacy Trivy result list (items lack Target)")
        scan = ParsedScan(format="trivy-json-legacy")
        add_results(scan, doc)
        return [scan]
    if not isinstance(doc, dict):
        raise Rejected(f"top-level JSON {type(doc).__name__} is not a Trivy report")
    sv = doc.get("SchemaVersion")
    has_shape = "Results" in doc or "ArtifactName" in doc or "ImageID" in doc
    if sv is None and not has_shape:
        raise Rejected("JSON object without SchemaVersion, ArtifactName or Results: not a Trivy report")
    if sv is not None and sv != 2:
        raise Rejected(f"unsupported Trivy SchemaVersion {sv!r} (ifc_scan reads 2 and the legacy list)")
    trivy = doc.get("Trivy") if isinstance(doc.get("Trivy"), dict) else {}
    scan = ParsedScan(
        format="trivy-json" if sv == 2 else "trivy-json-noschema",
        schema_version=sv,
        trivy_version=as_text(trivy.get("Version"), 40),
        artifact_name=as_text(doc.get("ArtifactName"), 1000),
        artifact_type=as_text(doc.get("ArtifactType"), 60),
        created_at=_created_at(doc.get("CreatedAt")),
    )
    if sv is None:  # pkg/report "new" format without SchemaVersion: image fields at top level
        _metadata(scan, doc)
    if isinstance(doc.get("Metadata"), dict):
        _metadata(scan, doc["Metadata"])
    if scan.artifact_type == "container_image" or (scan.artifact_type is None and scan.image_id):
        scan.lineage = image_lineage(scan.repo_tags, scan.repo_digests, scan.artifact_name)
    add_results(scan, doc.get("Results"))
    return [scan]
