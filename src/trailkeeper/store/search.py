"""A search `Query` as SQL for both engines: WHERE terms and their parameters.

Values only ever travel as parameters; the SQL text holds column names from the field table
and fixed fragments. The rules are `query.matches` (the contract tests hold both engines to it):

- a qualifier is equality / IN on its indexed column; a prefix `user.*` is the range
  `col >= 'user.' AND col < 'user/'` (index-friendly, no LIKE escaping; PostgreSQL compares
  these columns in the "C" collation, migration 0010, so the range is code-point order);
- a negated qualifier keeps events lacking the field: `(col IS NULL OR NOT (...))`;
- time bounds bound occurred_at (milliseconds, as the list filters);
- `metadata.<key>` reads the stored JSON text (not indexed: it filters within the range the
  other terms select);
- free text uses the full-text index: SQLite FTS5 table `events_fts` (rowid = seq), PostgreSQL
  the `search` tsvector column (GIN); words are `query.words`, a phrase's words in a row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trailkeeper.model import FIELDS
from trailkeeper.query import (
    LIMIT_MS,
    Match,
    MetadataTerm,
    Query,
    Term,
    Text,
    words,
)

SQLITE = "?"
POSTGRES = "%s"

# Qualifier field -> column (the field table's column for that document path).
_PATH_OF = {"actor": "actor.id"}
COLUMNS = {
    name: next(f.column for f in FIELDS if f.path == _PATH_OF.get(name, name))
    for name in (
        "actor",
        "actor.email",
        "action",
        "type",
        "target.type",
        "target.id",
        "source",
        "outcome",
    )
}
_LAST_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def where(query: Query, ph: str, position_ts: Callable[[int], Any]) -> tuple[list[str], list[Any]]:
    """WHERE terms (to be ANDed) selecting what `query` matches; `ph` names the engine."""
    terms: list[str] = []
    params: list[Any] = []
    for clause in query.clauses:
        if isinstance(clause, Term):
            _term(clause, ph, terms, params)
        elif isinstance(clause, MetadataTerm):
            _metadata(clause, ph, terms, params)
    _time(query, ph, position_ts, terms, params)
    _free_text([c for c in query.clauses if isinstance(c, Text)], ph, terms, params)
    return terms, params


def _negate(column_or_expr: str, positive: str, negated: bool) -> str:
    if not negated:
        return positive
    return f"({column_or_expr} IS NULL OR NOT ({positive}))"


def _term(clause: Term, ph: str, terms: list[str], params: list[Any]) -> None:
    column = COLUMNS[clause.field]
    parts: list[str] = []
    exact = [v.text for v in clause.values if v.match is Match.EXACT]
    if len(exact) == 1:
        parts.append(f"{column} = {ph}")
    elif exact:
        parts.append(f"{column} IN ({', '.join([ph] * len(exact))})")
    params.extend(exact)
    for value in clause.values:
        if value.match is Match.PREFIX:
            upper = prefix_upper_bound(value.text)
            if upper is None:
                parts.append(f"{column} >= {ph}")
                params.append(value.text)
            else:
                parts.append(f"({column} >= {ph} AND {column} < {ph})")
                params.extend((value.text, upper))
    positive = parts[0] if len(parts) == 1 else f"({' OR '.join(parts)})"
    terms.append(_negate(column, positive, clause.negated))


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string starting with `prefix` (code-point order):
    `user.` -> `user/`. None when there is none (the prefix is all U+10FFFF)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < _LAST_CODE_POINT:
            following = last + 1
            if following in _SURROGATES:  # not text in either engine; skip past them
                following = _SURROGATES.stop
            return "".join(chars) + chr(following)
    return None


def _metadata(clause: MetadataTerm, ph: str, terms: list[str], params: list[Any]) -> None:
    """The value at the key path as text (string itself, number's digits, true/false), NULL
    for null, objects, arrays and missing keys."""
    if ph == SQLITE:
        path = "$" + "".join(f'."{key}"' for key in clause.path)
        value = (
            f"CASE json_type(metadata, {ph}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            f"WHEN 'object' THEN NULL WHEN 'array' THEN NULL "
            f"ELSE CAST(json_extract(metadata, {ph}) AS TEXT) END"
        )
        path_params: list[Any] = [path, path]
    else:
        value = (
            f"CASE json_typeof(metadata::json #> {ph}) WHEN 'object' THEN NULL "
            f"WHEN 'array' THEN NULL ELSE metadata::json #>> {ph} END"
        )
        path_params = [list(clause.path), list(clause.path)]
    values = list(clause.values)
    positive = f"{value} IN ({', '.join([ph] * len(values))})"
    if clause.negated:
        terms.append(f"({value} IS NULL OR NOT ({positive}))")
        params.extend([*path_params, *path_params, *values])
    else:
        terms.append(positive)
        params.extend([*path_params, *values])


def _time(
    query: Query,
    ph: str,
    position_ts: Callable[[int], Any],
    terms: list[str],
    params: list[Any],
) -> None:
    after, before = query.time_bounds()
    if after is not None:
        if after >= LIMIT_MS:
            terms.append("1 = 0")  # after the last representable instant: nothing
        else:
            terms.append(f"occurred_at >= {ph}")
            params.append(position_ts(after))
    if before is not None and before < LIMIT_MS:  # at the limit it excludes nothing
        terms.append(f"occurred_at < {ph}")
        params.append(position_ts(before))


def _free_text(texts: list[Text], ph: str, terms: list[str], params: list[Any]) -> None:
    """Positive words in one index lookup (ANDed); negated ones excluded by another (ORed)."""
    wanted = [t for t in texts if not t.negated]
    unwanted = [t for t in texts if t.negated]
    if wanted:
        terms.append(_text_match(ph, negated=False))
        params.append(_text_query(wanted, ph, " AND " if ph == SQLITE else " & "))
    if unwanted:
        terms.append(_text_match(ph, negated=True))
        params.append(_text_query(unwanted, ph, " OR " if ph == SQLITE else " | "))


def _text_match(ph: str, *, negated: bool) -> str:
    if ph == SQLITE:
        op = "NOT IN" if negated else "IN"
        return f"seq {op} (SELECT rowid FROM events_fts WHERE events_fts MATCH {ph})"
    test = f"search @@ to_tsquery('simple', {ph})"
    return f"NOT ({test})" if negated else test


def _text_query(texts: list[Text], ph: str, joiner: str) -> str:
    """The engine's full-text query: each text a phrase of its words (tokens are letters and
    digits only, so they need no escaping in either syntax)."""
    phrases = []
    for text in texts:
        tokens = words(text.text)
        prefix = text.match is Match.PREFIX
        if ph == SQLITE:
            phrases.append(f'"{" ".join(tokens)}"' + (" *" if prefix else ""))
        else:
            lexemes = [f"'{token}'" for token in tokens]
            if prefix:
                lexemes[-1] += ":*"
            phrases.append("(" + " <-> ".join(lexemes) + ")")
    return joiner.join(phrases)
