"""run.json and jobs.json as GitHub's REST API writes them, validated at the reader's edge (pydantic).

Small documents, so a model costs nothing measurable; the Trivy rows are the exception (millions per
ingest: pydantic doubled their cost when measured, see BENCHMARKS.md), guarded by property tests instead.
A field of the wrong shape rejects the document with the field's path in the reason. Text fields take
any scalar (GitHub's are strings); identity fields (ids, numbers) must be integers that fit BIGINT.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

BIGINT_MAX = 2 ** 63 - 1


def _text(v):
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, (bool, int, float)):
        return str(v)
    raise ValueError(f"expected text, got {type(v).__name__}")


def _integer(v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError(f"expected an integer, got {type(v).__name__}")
    try:
        n = int(v)
    except ValueError:
        raise ValueError(f"expected an integer, got {str(v)[:40]!r}") from None
    if not 0 <= n <= BIGINT_MAX:
        raise ValueError(f"{n} is outside 0..2^63-1")
    return n


Text = Annotated[str | None, BeforeValidator(_text)]
Integer = Annotated[int | None, BeforeValidator(_integer)]
Id = Annotated[int, BeforeValidator(_integer)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Owner(_Doc):
    login: Text = None


class Repository(_Doc):
    full_name: Text = None
    owner: Owner | None = None


class WorkflowRun(_Doc):
    id: Id
    run_attempt: Integer = None
    run_number: Integer = None
    name: Text = None
    path: Text = None
    event: Text = None
    head_branch: Text = None
    head_sha: Text = None
    status: Text = None
    conclusion: Text = None
    created_at: Text = None
    run_started_at: Text = None
    updated_at: Text = None
    html_url: Text = None
    repository: Repository | None = None


class Step(_Doc):
    number: Integer = None
    name: Text = None
    status: Text = None
    conclusion: Text = None
    started_at: Text = None
    completed_at: Text = None


class Job(_Doc):
    id: Integer = None
    run_id: Integer = None
    run_attempt: Integer = None
    name: Text = None
    status: Text = None
    conclusion: Text = None
    started_at: Text = None
    completed_at: Text = None
    steps: Annotated[list[Step], BeforeValidator(lambda v: [] if v is None else v)] = []


class JobsList(_Doc):
    jobs: list[Job]


def why(exc: ValidationError) -> str:
    """The first problem, with the field's path: 'jobs.3.steps.0.number: expected an integer, got 'x''."""
    e = exc.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "document"
    msg = e["msg"].removeprefix("Value error, ")
    return f"field {where}: {msg}" + (f" ({len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else "")
