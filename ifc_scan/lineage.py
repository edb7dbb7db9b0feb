"""Image references -> lineage (registry + repository, lower-case, no tag or digest)."""

from __future__ import annotations

import re

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """'ghcr.io/a/b:1.2@sha256:..' -> ('ghcr.io/a/b', '1.2', 'sha256:..'). Repository not normalised."""
    ref = ref.strip()
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        digest = digest.lower()
    tag = None
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    return ref, tag, digest


def lineage_of(ref: str | None) -> str | None:
    """Normalise an image reference to its lineage; bare Docker Hub names expand."""
    if not ref or not isinstance(ref, str):
        return None
    repo, _tag, _digest = split_ref(ref)
    repo = repo.lower().strip("/")
    if not repo or " " in repo:
        return None
    parts = repo.split("/")
    first = parts[0]
    is_registry = "." in first or ":" in first or first == "localhost"
    if not is_registry:
        if len(parts) == 1:
            parts = ["library"] + parts
        parts = ["docker.io"] + parts
    elif first in ("index.docker.io", "registry-1.docker.io"):
        parts[0] = "docker.io"
    if parts[0] == "docker.io" and len(parts) == 2:
        parts.insert(1, "library")
    return "/".join(parts)


def digest_of(ref: str | None) -> str | None:
    if not ref:
        return None
    m = _DIGEST.search(ref.lower())
    return m.group(0) if m else None


def looks_like_image_ref(ref: str | None) -> bool:
    """An image reference rather than a path or repository URL (tarballs, dirs, git URLs are not)."""
    if not ref or "://" in ref or ref.startswith((".", "/")):
        return False
    if re.search(r"\.(tar|gz|tgz|json|ya?ml|lock|txt|xml|zip)$", ref.split("@")[0].lower()):
        return False
    repo = split_ref(ref)[0]
    return bool(re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._\-/:]*", repo))
