"""Large Trivy JSON reports (SchemaVersion 2), read as a stream so memory does not grow with the file.

A 180 MB report parsed whole needs about 1 GB; streamed, each finding is built, turned into a row and
dropped. Rows are the same as trivy_json.read_trivy_json makes (a test compares both readers).
Shapes other than a SchemaVersion 2 object raise NotStreamable, and the caller parses the file whole.
"""

from __future__ import annotations

import ijson

from ifc_scan.ingest.model import ParsedScan, Rejected, as_text
from ifc_scan.ingest.trivy_json import (_created_at, _metadata, image_lineage, license_row, misconf_row, secret_row,
                                        vuln_row)

TOP_SCALARS = ("SchemaVersion", "CreatedAt", "ArtifactName", "ArtifactType")
LISTS = ("Vulnerabilities", "Misconfigurations", "Secrets", "Licenses", "ExperimentalModifiedFindings")


# A Trivy report nests about 8 levels (Results > item > Vulnerabilities > item > CVSS > nvd > ...);
# the whole-file reader stops at Python's recursion limit instead.
MAX_NESTING = 64


class NotStreamable(Exception):
    pass


def _row(kind: str, item: dict):
    """(table, row builder) for one list item; target/class/type are filled in at the result's end."""
    if kind == "Vulnerabilities":
        return "v", vuln_row(None, None, None, item)
    if kind == "Misconfigurations":
        return "m", misconf_row(None, None, None, item)
    if kind == "Secrets":
        return "s", secret_row(None, item)
    if kind == "Licenses":
        return "l", license_row(None, item)
    f, mk = item.get("Finding"), str(item.get("Type", "")).lower()
    if not isinstance(f, dict):
        return None, None
    sup = (as_text(item.get("Status"), 40), as_text(item.get("Statement"), 2000), as_text(item.get("Source"), 1000))
    if mk.startswith("vuln") or "VulnerabilityID" in f:
        return "v", vuln_row(None, None, None, f, True, sup)
    if mk.startswith("misconf"):
        return "m", misconf_row(None, None, None, f, True)
    if mk.startswith("secret"):
        return "s", secret_row(None, f, True)
    if mk.startswith("licen"):
        return "l", license_row(None, f, True)
    return None, None


def read_trivy_json_stream(fh) -> list[ParsedScan]:
    """Binary file object -> [ParsedScan]. Raises Rejected (bad input) or NotStreamable (other shape)."""
    scan = ParsedScan(format="trivy-json")
    top: dict = {}
    builder = None            # ijson ObjectBuilder of the subtree being built
    building = None           # what it is: "Metadata", "Trivy" or one of LISTS
    depth = 0
    target = cls = typ = None
    pending: list[tuple[str, tuple]] = []     # rows of the current result, waiting for its Target/Class/Type
    tables = {"v": scan.vulnerabilities, "m": scan.misconfigurations, "s": scan.secrets, "l": scan.licenses}
    first = True
    nesting = 0               # of the whole document: ijson's prefix grows with it, so its cost is O(depth^2)
    try:
        # small reads: ijson builds the prefixes of a whole read at once, O(depth^2) for a deep one
        for prefix, event, value in ijson.parse(fh, use_float=True, buf_size=4096):
            if event in ("start_map", "start_array"):
                nesting += 1
                if nesting > MAX_NESTING:
                    raise Rejected(f"JSON nested more than {MAX_NESTING} levels deep (at {prefix[:80]!r}...): "
                                   "not a Trivy report")
            elif event in ("end_map", "end_array"):
                nesting -= 1
            if first:
                if event != "start_map":
                    raise NotStreamable()
                first = False
                continue
            if builder is not None:
                builder.event(event, value)
                depth += {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}.get(event, 0)
                if depth == 0:
                    if building in ("Metadata", "Trivy"):
                        top[building] = builder.value
                    else:
                        table, row = _row(building, builder.value) if isinstance(builder.value, dict) else (None, None)
                        if table:
                            pending.append((table, row))
                    builder = building = None
                continue
            if prefix in TOP_SCALARS and event in ("string", "number", "null"):
                top[prefix] = value
            elif prefix in ("Metadata", "Trivy") and event == "start_map":
                builder, building, depth = ijson.ObjectBuilder(), prefix, 1
                builder.event(event, value)
            elif prefix == "Results" and event not in ("start_array", "end_array", "null"):
                raise Rejected(f"Results is a {event.replace('start_', '')}, not a list")
            elif prefix.startswith("Results.item."):
                rest = prefix[len("Results.item."):]
                if rest in ("Target", "Class", "Type") and event in ("string", "null"):
                    target, cls, typ = (value, cls, typ) if rest == "Target" else \
                        (target, value, typ) if rest == "Class" else (target, cls, value)
                elif rest == "ExperimentalModifiedFindings" and event == "start_array":
                    scan.lists_suppressed = True
                elif rest.endswith(".item") and rest[:-5] in LISTS and event == "start_map":
                    builder, building, depth = ijson.ObjectBuilder(), rest[:-5], 1
                    builder.event(event, value)
            elif prefix == "Results.item" and event == "end_map":
                head = {"v": (as_text(target, 500), cls, typ), "m": (as_text(target, 500), cls, None),
                        "s": (as_text(target, 500),), "l": (as_text(target, 500),)}
                for table, row in pending:
                    h = head[table]
                    if table == "m":   # misconfiguration type comes from the item unless the result names it
                        h = (h[0], cls, row[2] if typ is None else as_text(typ, 100))
                    tables[table].append(h + row[len(h):])
                pending, target, cls, typ = [], None, None, None
    except ijson.common.IncompleteJSONError as exc:
        raise Rejected(f"broken JSON (truncated?): {str(exc)[:200]}") from None
    except ijson.JSONError as exc:
        raise Rejected(f"broken JSON: {str(exc)[:200]}") from None
    except UnicodeDecodeError as exc:
        raise Rejected(f"not valid UTF-8 text at byte {exc.start}") from None
    if top.get("SchemaVersion") != 2:
        raise NotStreamable()
    _report_fields(scan, top)
    return [scan]


def _report_fields(scan: ParsedScan, top: dict) -> None:
    """The report's own fields (Trivy, ArtifactName, CreatedAt, Metadata ...), collected while streaming."""
    trivy = top.get("Trivy") if isinstance(top.get("Trivy"), dict) else {}
    scan.schema_version = 2
    scan.trivy_version = as_text(trivy.get("Version"), 40)
    scan.artifact_name = as_text(top.get("ArtifactName"), 1000)
    scan.artifact_type = as_text(top.get("ArtifactType"), 60)
    scan.created_at = _created_at(top.get("CreatedAt"))
    if isinstance(top.get("Metadata"), dict):
        _metadata(scan, top["Metadata"])
    if scan.artifact_type == "container_image" or (scan.artifact_type is None and scan.image_id):
        scan.lineage = image_lineage(scan.repo_tags, scan.repo_digests, scan.artifact_name)
