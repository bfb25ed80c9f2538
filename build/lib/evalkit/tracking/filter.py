"""Parse search filters and order_by clauses into a small typed syntax tree.

Filters use MLflow's search syntax, extended with ``OR``, ``NOT`` and parentheses::

    metrics.`faithfulness/v1/mean` >= 0.8 AND params.model IN ('gpt-4o', 'gpt-4o-mini')
    NOT (tags.team = 'rag' OR attributes.status = 'failed')

A key is ``<entity>.<name>`` where the entity is ``metrics``, ``params``, ``tags`` or
``attributes`` (singular forms, ``parameters``, ``attr`` and ``run`` work too). Names made of
letters, digits and ``_ . / -`` can be written bare; quote any other name with backquotes or
double quotes. ``tags.mlflow.runName``, where MLflow keeps a run's name, is the run's name
(``attributes.run_name``). Values are numbers or strings in single or double quotes, where ``\\'``,
``\\"`` and ``\\\\`` escape a quote or a backslash. Keywords are case-insensitive and ``NOT``
binds tighter than ``AND``, which binds tighter than ``OR``.

Order_by clauses are ``<key> [ASC|DESC]``, given as a list or as one comma-separated string::

    ["metrics.accuracy DESC", "attributes.start_time"]

This module only checks and types what the user wrote; the store compiles the tree to queries.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TypeAlias

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedToken

from evalkit.entities import RunStatus
from evalkit.errors import FilterSyntaxError

ENTITY_METRIC = "metric"
ENTITY_PARAM = "param"
ENTITY_TAG = "tag"
ENTITY_ATTRIBUTE = "attribute"

ATTRIBUTES = (
    "run_id",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "experiment_id",
    "artifact_uri",
    "parent_run_id",
    "user_id",
)
NUMERIC_ATTRIBUTES = ("start_time", "end_time")


@dataclass(frozen=True)
class Key:
    """What a comparison or sort looks at: one metric, param, tag or run attribute.

    ``entity`` is one of the ``ENTITY_*`` constants, ``name`` is unquoted (attribute aliases are
    resolved, so ``attributes.name`` gives ``run_name``), and ``position`` is the 0-based offset
    of the key in the text it was parsed from.
    """

    entity: str
    name: str
    position: int


@dataclass(frozen=True)
class Comparison:
    """``key op value``.

    ``op`` is one of ``=, !=, <, <=, >, >=, LIKE, NOT LIKE, ILIKE, NOT ILIKE, IN, NOT IN,
    IS NULL, IS NOT NULL``. ``value`` is a float for metrics and time attributes, a string for
    everything else, a tuple of those for ``[NOT] IN`` and None for ``IS [NOT] NULL``.
    """

    key: Key
    op: str
    value: float | str | tuple[float | str, ...] | None


@dataclass(frozen=True)
class And:
    """True when every item is true. Never directly holds another ``And``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """True when any item is true. Never directly holds another ``Or``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    """True when ``item`` is false."""

    item: Expr


Expr: TypeAlias = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderBy:
    """Sort by ``key``, ascending unless ``ascending`` is False."""

    key: Key
    ascending: bool


# KEY takes priority so that a key whose prefix happens to be a keyword ("not.x") is reported
# as an unknown entity rather than as a stray keyword. Keywords end at a word boundary so that
# "ORDER" is not read as OR followed by garbage.
_GRAMMAR = r"""
?filter: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: NOT not_expr -> negation
         | atom
?atom: comparison
     | "(" or_expr ")"
!comparison: KEY COMP_OP value
           | KEY NOT? (LIKE | ILIKE) value
           | KEY NOT? IN "(" (value ("," value)*)? ")"
           | KEY IS NOT? NULL
?value: NUMBER | STRING

order_by: order_clause ("," order_clause)*
order_clause: KEY (ASC | DESC)?

KEY.2: /[A-Za-z_][A-Za-z0-9_]*\.(?:`[^`]*`|"[^"]*"|[A-Za-z0-9_.\/-]+)/
NUMBER: /-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/
STRING: /'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/s
COMP_OP: /!=|<=|>=|=|<|>/
_AND: /and\b/i
_OR: /or\b/i
NOT: /not\b/i
IN: /in\b/i
LIKE: /like\b/i
ILIKE: /ilike\b/i
IS: /is\b/i
NULL: /null\b/i
ASC: /asc\b/i
DESC: /desc\b/i

%ignore /\s+/
"""

_ENTITIES = {
    "metric": ENTITY_METRIC,
    "metrics": ENTITY_METRIC,
    "param": ENTITY_PARAM,
    "params": ENTITY_PARAM,
    "parameter": ENTITY_PARAM,
    "parameters": ENTITY_PARAM,
    "tag": ENTITY_TAG,
    "tags": ENTITY_TAG,
    "attribute": ENTITY_ATTRIBUTE,
    "attributes": ENTITY_ATTRIBUTE,
    "attr": ENTITY_ATTRIBUTE,
    "run": ENTITY_ATTRIBUTE,
}
_ATTRIBUTE_ALIASES = {"name": "run_name", "id": "run_id"}
# MLflow keeps a run's name in this tag, and its users filter and sort on it; evalkit keeps the
# name in the run itself, so the key reads the run_name attribute (one place for the name).
MLFLOW_RUN_NAME_TAG = "mlflow.runName"
_STATUSES = tuple(status.value for status in RunStatus)

_OPERATOR_TERMINALS = {"COMP_OP", "NOT", "LIKE", "ILIKE", "IN", "IS", "NULL"}
_PATTERN_OPS = {"LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"}
_EQUALITY_OPS = {"=", "!=", "IN", "NOT IN"}
_NULL_OPS = {"IS NULL", "IS NOT NULL"}
_MEMBERSHIP_OPS = {"IN", "NOT IN"}

# How a parse error names what would have been valid, in the order the message lists them.
# The valid terminals come from lark's interactive parser rather than the LALR table, whose
# merged lookaheads would offer ',' or ')' where no list or parenthesis is open.
# STRING, IS and $END are left out: they are implied by NUMBER, COMP_OP and the other entries.
_EXPECTED = (
    ("KEY", "a key such as metrics.accuracy"),
    ("NOT", "NOT"),
    ("LPAR", "'('"),
    ("COMP_OP", "a comparison operator such as =, >, LIKE, IN or IS NULL"),
    ("NUMBER", "a value (a number or a quoted string)"),
    ("LIKE", "LIKE"),
    ("ILIKE", "ILIKE"),
    ("IN", "IN"),
    ("NULL", "NULL"),
    ("_AND", "AND"),
    ("_OR", "OR"),
    ("ASC", "ASC"),
    ("DESC", "DESC"),
    ("COMMA", "','"),
    ("RPAR", "')'"),
)
_UNCLOSED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.[`\"]")
_ESCAPE = re.compile(r"\\(['\"\\])")


def parse_filter(text: str | None) -> Expr | None:
    """Parse a search filter; None or a blank string means "no filter" and gives None.

    Raises :class:`~evalkit.errors.FilterSyntaxError` pointing at the offending spot when the
    text is malformed or compares a key with a value of the wrong kind.
    """
    if text is None or not text.strip():
        return None
    return _expr(_parse(text, "filter", "filter"), text)


def parse_order_by(clauses: list[str] | str | None) -> list[OrderBy]:
    """Parse order_by clauses such as ``["metrics.accuracy DESC", "attributes.start_time"]``.

    A single string may hold several clauses separated by commas. Blank clauses are skipped.
    Raises :class:`~evalkit.errors.FilterSyntaxError` whose position is within the clause at
    fault.
    """
    if clauses is None:
        return []
    if isinstance(clauses, str):
        clauses = [clauses]
    result = []
    for clause in clauses:
        if clause.strip():
            tree = _parse(clause, "order_by", "order_by clause")
            result.extend(_order_by(child, clause) for child in tree.children)
    return result


@functools.cache
def _parser() -> Lark:
    # Building the LALR tables takes ~20 ms: pay that on the first search, not on import.
    return Lark(_GRAMMAR, parser="lalr", start=["filter", "order_by"], propagate_positions=True)


def _parse(text: str, start: str, kind: str) -> Tree[Token]:
    # `from None`: lark's internals would only distract from the message, which says it all.
    try:
        return _parser().parse(text, start=start)
    except UnexpectedCharacters as err:
        raise _lexing_error(err, text) from None
    except UnexpectedToken as err:
        raise _parsing_error(err, text, kind) from None


def _lexing_error(err: UnexpectedCharacters, text: str) -> FilterSyntaxError:
    # Complete strings and keys always lex, so a quote where lexing stops was never closed.
    position = err.pos_in_stream
    rest = text[position:]
    if rest[0] in "'\"":
        return FilterSyntaxError(text, position, "unterminated string: the closing quote is missing")
    if unclosed := _UNCLOSED_KEY.match(rest):
        return FilterSyntaxError(
            text, position + unclosed.end() - 1, "unterminated quoted key: the closing quote is missing"
        )
    word = re.split(r"\W", rest, maxsplit=1)[0] or rest[0]
    return _unexpected(text, position, f"'{word}'", err.interactive_parser.accepts())


def _parsing_error(err: UnexpectedToken, text: str, kind: str) -> FilterSyntaxError:
    token = err.token
    expected = err.interactive_parser.accepts()
    if token.type == "$END":
        # lark places the end marker on the last token; the caret belongs after it.
        return _unexpected(text, len(text.rstrip()), f"end of {kind}", expected)
    if token.type == "RPAR" and "$END" in expected:
        # The text could end here, so no parenthesis is open.
        return FilterSyntaxError(text, token.start_pos, "unmatched ')'")
    shown = token.value if token.type == "STRING" else f"'{token.value}'"
    return _unexpected(text, token.start_pos, shown, expected)


def _unexpected(text: str, position: int, what: str, expected: set[str]) -> FilterSyntaxError:
    if "COMP_OP" in expected:
        expected = expected - {"NOT", "LIKE", "ILIKE", "IN"}
    phrases = [phrase for name, phrase in _EXPECTED if name in expected]
    problem = f"unexpected {what}"
    if phrases:
        listed = phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} or {phrases[-1]}"
        problem += f"; expected {listed}"
    return FilterSyntaxError(text, position, problem)


def _expr(tree: Tree[Token], text: str) -> Expr:
    match tree.data:
        case "or_expr":
            return Or(_flatten(Or, [_expr(child, text) for child in tree.children]))
        case "and_expr":
            return And(_flatten(And, [_expr(child, text) for child in tree.children]))
        case "negation":
            return Not(_expr(tree.children[1], text))
        case _:
            return _comparison(tree, text)


def _flatten(kind: type[And] | type[Or], items: list[Expr]) -> tuple[Expr, ...]:
    # (a OR b) OR c means the same as a OR b OR c; one flat list is simpler to compile.
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return tuple(flat)


def _comparison(tree: Tree[Token], text: str) -> Comparison:
    key_token, *rest = tree.children
    key = _key(key_token, text)
    op_tokens = [token for token in rest if token.type in _OPERATOR_TERMINALS]
    op = " ".join(token.value.upper() for token in op_tokens)
    values = [token for token in rest if token.type in ("NUMBER", "STRING")]
    if op in _PATTERN_OPS and _is_numeric(key):
        raise FilterSyntaxError(
            text, op_tokens[0].start_pos, f"{_subject(key)} is a number: LIKE and ILIKE only match text"
        )
    if op in _NULL_OPS:
        return Comparison(key, op, None)
    if op in _MEMBERSHIP_OPS:
        if not values:
            raise FilterSyntaxError(text, rest[-1].start_pos, f"{op} needs at least one value")
        return Comparison(key, op, tuple(_value(key, op, token, text) for token in values))
    return Comparison(key, op, _value(key, op, values[0], text))


def _key(token: Token, text: str) -> Key:
    prefix, _, name = token.value.partition(".")
    entity = _ENTITIES.get(prefix.lower())
    if entity is None:
        raise FilterSyntaxError(
            text,
            token.start_pos,
            f"unknown key prefix {prefix!r}; a key starts with one of "
            + ", ".join(f"{alias}." for alias in _ENTITIES),
        )
    if name[0] in '`"':
        name = name[1:-1]
    if not name:
        raise FilterSyntaxError(text, token.start_pos, "the key's name is empty")
    if entity == ENTITY_TAG and name == MLFLOW_RUN_NAME_TAG:
        return Key(ENTITY_ATTRIBUTE, "run_name", token.start_pos)
    if entity == ENTITY_ATTRIBUTE:
        name = _ATTRIBUTE_ALIASES.get(name, name)
        if name not in ATTRIBUTES:
            raise FilterSyntaxError(
                text, token.start_pos, f"unknown attribute {name!r}; attributes are {', '.join(ATTRIBUTES)}"
            )
    return Key(entity, name, token.start_pos)


def _value(key: Key, op: str, token: Token, text: str) -> float | str:
    if _is_numeric(key):
        if token.type == "STRING":
            unit = " (milliseconds since the epoch)" if key.entity == ENTITY_ATTRIBUTE else ""
            raise FilterSyntaxError(
                text, token.start_pos, f"{_subject(key)} compares with numbers{unit}, not strings"
            )
        return float(token.value)
    if token.type == "NUMBER":
        # Text keys match numbers by their spelling, which only makes sense for equality:
        # '10' < '9' as text, so an unquoted number with < would silently mislead.
        number_as_text = op in _EQUALITY_OPS and (
            key.entity != ENTITY_ATTRIBUTE or key.name == "experiment_id"
        )
        if not number_as_text:
            raise FilterSyntaxError(
                text,
                token.start_pos,
                f"{_subject(key)} is text, so it cannot be compared with {op} against a number; "
                f"quote the value ('{token.value}') to compare it as text",
            )
        value = token.value
    else:
        value = _ESCAPE.sub(r"\1", token.value[1:-1])
    if key.entity == ENTITY_ATTRIBUTE and key.name == "status" and op in _EQUALITY_OPS:
        if value.upper() not in _STATUSES:
            raise FilterSyntaxError(
                text, token.start_pos, f"unknown run status {value!r}; use one of {', '.join(_STATUSES)}"
            )
        value = value.upper()
    return value


def _order_by(tree: Tree[Token], text: str) -> OrderBy:
    key_token, *direction = tree.children
    ascending = not direction or direction[0].type == "ASC"
    return OrderBy(_key(key_token, text), ascending)


def _is_numeric(key: Key) -> bool:
    return key.entity == ENTITY_METRIC or (
        key.entity == ENTITY_ATTRIBUTE and key.name in NUMERIC_ATTRIBUTES
    )


def _subject(key: Key) -> str:
    return f"{key.entity} {key.name!r}"
