"""The three ways Trivy 0.59 turns an exception's expiry text into an instant, as Go does it.

- `.trivyignore` `exp:` fields: time.Parse("2006-01-02"): four ASCII digits, two, two, a real day.
- `.trivyignore.yaml` plain scalars: yaml.v3 resolves a timestamp when the text starts with four digits
  and '-' and parses with one of its layouts (one- or two-digit month, day, hour, minute, second).
- anything else given for `expired_at` (a quoted string, a plain one that is no timestamp): time.Time's
  UnmarshalText, strict RFC 3339.
Digits are ASCII only: Go's parsers know no other. Year 0 parses in Go and is long expired.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta

EXPIRED_LONG_AGO = datetime(1, 1, 1)     # year 0 (Go accepts it; Python's datetime cannot hold it)

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_YAML_TS = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
                      r"(?:(?:([Tt])|( +))([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,]([0-9]+))?"
                      r"(Z|[+-][0-9]{2}:[0-9]{2})?)?", re.ASCII)
_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]+))?"
                      r"(Z|[+-][0-9]{2}:[0-9]{2})", re.ASCII)


class GoTimeError(ValueError):
    pass


def _instant(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, frac: str | None = None,
             zone: str | None = None) -> datetime:
    if not 1 <= mo <= 12:
        raise GoTimeError("month out of range")
    if not 1 <= d <= calendar.monthrange(y or 2000, mo)[1]:     # year 0 is a leap year, as 2000
        raise GoTimeError("day out of range")
    if h > 23 or mi > 59 or s > 59:
        raise GoTimeError("hour, minute or second out of range")
    offset = timedelta(0)
    if zone and zone != "Z":
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            raise GoTimeError("time zone offset out of range")
        offset = timedelta(hours=oh, minutes=om) * (1 if zone[0] == "+" else -1)
    if y == 0:
        return EXPIRED_LONG_AGO
    micro = int((frac or "0")[:6].ljust(6, "0"))
    local = datetime(y, mo, d, h, mi, s, micro)
    try:
        return local - offset
    except OverflowError:
        return EXPIRED_LONG_AGO if local.year < 5000 else datetime.max


def parse_exp_field(text: str) -> datetime:
    """`.trivyignore`'s exp: value -> naive UTC midnight."""
    m = _DATE.fullmatch(text)
    if not m:
        raise GoTimeError(f"{text!r} is not YYYY-MM-DD")
    return _instant(int(m[1]), int(m[2]), int(m[3]))


def yaml_timestamp(text: str) -> datetime | None:
    """yaml.v3's implicit timestamp of a plain scalar, or None when the text is no timestamp."""
    if not re.match(r"[0-9]{4}-", text, re.ASCII):
        return None
    m = _YAML_TS.fullmatch(text)
    if not m:
        return None
    if (m[5] and m[10]) or (m[4] and not m[10]):    # the space layout has no zone, the T layout needs one
        return None
    try:
        if m[6] is None:
            return _instant(int(m[1]), int(m[2]), int(m[3]))
        return _instant(int(m[1]), int(m[2]), int(m[3]), int(m[6]), int(m[7]), int(m[8]), m[9], m[10])
    except GoTimeError:
        return None


def parse_rfc3339(text: str) -> datetime:
    """time.Time.UnmarshalText (strict RFC 3339) -> naive UTC."""
    m = _RFC3339.fullmatch(text)
    if not m:
        raise GoTimeError(f"parsing time {text!r} as RFC 3339")
    return _instant(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]), m[7], m[8])
