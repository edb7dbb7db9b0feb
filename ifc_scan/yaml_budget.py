"""YAML from users (exception files, the inventory, the policy, CI patterns) read within a budget.

A YAML alias bomb ("billion laughs") is a few hundred bytes whose aliases expand to gigabytes once
the loaded value is walked. The document is composed first (PyYAML shares an aliased node instead
of copying it) and the size it would have once expanded is counted with each shared node counted
once per use; a document that would expand past the budget is refused before it is loaded.
"""

from __future__ import annotations

import yaml

MAX_EXPANDED_NODES = 200_000      # a hand-written exception file or inventory has thousands at most
MAX_YAML_BYTES = 4 * 1024 * 1024


def _expanded(node, memo: dict) -> int:
    key = id(node)
    if key not in memo:
        memo[key] = 0                      # a recursive alias counts as one node, never loops
        if isinstance(node, yaml.SequenceNode):
            n = 1 + sum(_expanded(c, memo) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            n = 1 + sum(_expanded(k, memo) + _expanded(v, memo) for k, v in node.value)
        else:
            n = 1
        memo[key] = n
    return memo[key]


def yaml_budget_problem(text: str) -> str | None:
    """Why this text is refused before loading, or None (a syntax error is left to the loader)."""
    if len(text) > MAX_YAML_BYTES:
        return f"YAML document of {len(text):,} characters, over the limit of {MAX_YAML_BYTES:,}"
    if "*" not in text:                    # no alias: nothing expands
        return None
    try:
        root = yaml.compose(text)
    except (yaml.YAMLError, RecursionError):
        return None
    if root is None:
        return None
    try:
        n = _expanded(root, {})
    except RecursionError:
        return "YAML nested too deeply"
    if n > MAX_EXPANDED_NODES:
        return (f"YAML aliases (*name) would expand it to {n:,} values, over the limit of {MAX_EXPANDED_NODES:,}: "
                "refused unexpanded (an alias bomb)")
    return None


def load_user_yaml(text: str, what: str, error=ValueError, mapping_hint: str = "a YAML mapping") -> dict:
    """A user's YAML file (`what` names it in every message): within the budget, valid, a mapping (an
    empty file is an empty mapping). Raises `error` with the reason."""
    problem = yaml_budget_problem(text)
    if problem:
        raise error(f"{what} refused: {problem}")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{what} is not valid YAML: {str(exc).splitlines()[0][:200]}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise error(f"{what} must be {mapping_hint}")
    return doc
