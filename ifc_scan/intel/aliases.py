"""The CVE ids of a finding's vulnerability id (issue 31 contract).

TEMPORARY (helper B's branch): only the CVE-only case, a vulnerability id that is itself a CVE id. Helper A's
ifc_scan/intel/aliases.py (same signature: the Trivy report's own aliases of GHSA and distribution advisories,
observed before `end`) replaces this file at merge.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Iterable

_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")


def finding_cves(con, vulnerability_ids: Iterable[str], end: datetime) -> dict[str, tuple[str, ...]]:
    """Each vulnerability id -> its sorted CVE ids (here: itself when it is a CVE id, else none)."""
    return {vid: ((vid,) if _CVE.match(vid or "") else ()) for vid in set(vulnerability_ids)}
