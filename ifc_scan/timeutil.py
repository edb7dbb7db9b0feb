"""Timestamps: every time in ifc_scan is a naive datetime in UTC (stored as DuckDB TIMESTAMP)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

# re.ASCII everywhere a time is matched: without it \d takes any Unicode digit ('٢٠٢٦' Arabic-Indic,
# '２０２６' fullwidth) and int() reads them, so a date no tool writes would be accepted as evidence.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*([Zz]|[+-]\d{2}:?\d{2})?$", re.ASCII
)
_YMD = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_ISO_WEEK = re.compile(r"(\d{4})-W(\d{2})", re.ASCII)

# Plausibility window for scan and CI times: anything outside is a bad date, not evidence.
EARLIEST_PLAUSIBLE = datetime(2000, 1, 1)


class BadTimestamp(ValueError):
    pass


def parse_ts(value: str | None) -> datetime | None:
    """Parse an RFC 3339 timestamp (0-9 fractional digits, Z or offset) to naive UTC.

    Returns None for None/"" and for Go's zero time (0001-01-01), which Trivy writes for 'unknown'.
    Raises BadTimestamp for anything else that does not parse.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadTimestamp(f"timestamp is not a string: {value!r:.60}")
    m = _RFC3339.match(value.strip())
    if not m:
        raise BadTimestamp(f"not an RFC 3339 timestamp: {value!r:.60}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    if y == "0001":
        return None
    micro = int((frac or "0")[:6].ljust(6, "0"))  # nanoseconds truncate to microseconds
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro)
    except ValueError as exc:
        raise BadTimestamp(f"impossible date {value!r:.60}: {exc}") from None
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        oh, om = int(digits[:2]), int(digits[2:])
        if om > 59 or oh * 60 + om > 14 * 60:     # real UTC offsets lie within +-14:00
            raise BadTimestamp(f"UTC offset {tz} out of range (+-14:00) in {value!r:.60}")
        try:
            dt -= sign * timedelta(hours=oh, minutes=om)
        except OverflowError:
            raise BadTimestamp(f"{value!r:.60} is out of the representable range once moved to UTC") from None
    return dt


def iso_z(dt: datetime | None) -> str | None:
    """RFC 3339 with Z, second precision unless there are microseconds."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds") + "Z"


def utc_from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)


def parse_date(value) -> date:
    """A YYYY-MM-DD date, strictly (Go's 2006-01-02 layout: zero-padded)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _YMD.fullmatch(value):
        raise BadTimestamp(f"not a YYYY-MM-DD date: {value!r:.40}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadTimestamp(f"impossible date {value!r}: {exc}") from None


def strptime_ascii(value: str, fmt: str) -> datetime:
    """datetime.strptime, ASCII only: strptime's patterns take any Unicode digit ('٠٢/Mar/٢٦')."""
    if not value.isascii():
        raise ValueError(f"{value!r:.40} is not ASCII text")
    return datetime.strptime(value, fmt)


def day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day)


def monday_of(d: date) -> date:
    """The Monday of d's ISO week."""
    return d - timedelta(days=d.weekday())


# ---- ISO weeks ---------------------------------------------------------------------------

def week_label(monday: date) -> str:
    y, w, _ = monday.isocalendar()
    return f"{y}-W{w:02d}"


def parse_week(label: str) -> date:
    """'2026-W10' (any case: '2026-w10' is the same week) or a partition key '2026-03-02' -> the Monday of that
    ISO week. Anything else is a ValueError naming the label and the two accepted forms."""
    text = label.strip()
    m = _ISO_WEEK.fullmatch(text.upper())
    if m:
        try:
            return date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
        except ValueError:
            raise ValueError(f"{label!r:.40}: {m.group(1)} has no ISO week {m.group(2)}") from None
    if not _YMD.fullmatch(text):
        raise ValueError(f"{label!r:.40} is not a week: give YYYY-Www (e.g. 2026-W10) or the Monday's date (2026-03-02)")
    d = date.fromisoformat(text)
    if d.weekday() != 0:
        raise ValueError(f"{label} is not a Monday (weeks start on Monday)")
    return d


def week_bounds(monday: date) -> tuple[datetime, datetime]:
    start = day_start(monday)
    return start, start + timedelta(days=7)


def duration(hours) -> str:
    """Hours as a reader counts them, the one duration format of every page and message: '18 h', '1 d 6 h',
    '49 d' ('n/a' when there was nothing to measure)."""
    if hours is None:
        return "n/a"
    if hours < 24:
        h = round(float(hours), 1)
        return f"{int(h)} h" if h == int(h) else f"{h:,.1f} h"
    days, rest = divmod(round(hours), 24)
    return f"{days:,} d" + (f" {rest} h" if rest else "")
