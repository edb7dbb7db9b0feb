"""Markdown for Dagster metadata: untrusted text (file names, reasons, scan strings) shown as text."""

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~=:])")


def md_escape(value) -> str:
    """Every Markdown metacharacter backslash-escaped and line breaks flattened: no link, image, HTML tag
    or code span can be formed from the text."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", text)
