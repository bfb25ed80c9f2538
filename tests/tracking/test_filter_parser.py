"""Unit tests for the search filter and order_by parser (no store, no SQL)."""

from __future__ import annotations

import pytest

from evalkit.errors import FilterSyntaxError, InvalidArgument
from evalkit.tracking.filter import (
    ATTRIBUTES,
    ENTITY_ATTRIBUTE,
    ENTITY_METRIC,
    ENTITY_PARAM,
    ENTITY_TAG,
    And,
    Comparison,
    Key,
    Not,
    Or,
    OrderBy,
    parse_filter,
    parse_order_by,
)


def metric(name: str, op: str, value: object, position: int = 0) -> Comparison:
    return Comparison(Key(ENTITY_METRIC, name, position), op, value)


def param(name: str, op: str, value: object, position: int = 0) -> Comparison:
    return Comparison(Key(ENTITY_PARAM, name, position), op, value)


def tag(name: str, op: str, value: object, position: int = 0) -> Comparison:
    return Comparison(Key(ENTITY_TAG, name, position), op, value)


def attribute(name: str, op: str, value: object, position: int = 0) -> Comparison:
    return Comparison(Key(ENTITY_ATTRIBUTE, name, position), op, value)


def filter_error(text: str) -> FilterSyntaxError:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    return info.value


def order_by_error(clauses: list[str] | str) -> FilterSyntaxError:
    with pytest.raises(FilterSyntaxError) as info:
        parse_order_by(clauses)
    return info.value


# --- no filter ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_missing_or_blank_filter_means_no_filter(text: str | None) -> None:
    assert parse_filter(text) is None


# --- operators ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.m = 1", metric("m", "=", 1.0)),
        ("metrics.m != 1", metric("m", "!=", 1.0)),
        ("metrics.m < 1", metric("m", "<", 1.0)),
        ("metrics.m <= 1", metric("m", "<=", 1.0)),
        ("metrics.m > 1", metric("m", ">", 1.0)),
        ("metrics.m >= 1", metric("m", ">=", 1.0)),
        ("metrics.m>=1", metric("m", ">=", 1.0)),
        ("params.p LIKE 'a%'", param("p", "LIKE", "a%")),
        ("params.p NOT LIKE 'a%'", param("p", "NOT LIKE", "a%")),
        ("params.p ILIKE 'a%'", param("p", "ILIKE", "a%")),
        ("params.p NOT ILIKE 'a%'", param("p", "NOT ILIKE", "a%")),
        ("params.p IN ('a', 'b')", param("p", "IN", ("a", "b"))),
        ("params.p NOT IN ('a')", param("p", "NOT IN", ("a",))),
        ("metrics.m IN (1, 2.5, -3)", metric("m", "IN", (1.0, 2.5, -3.0))),
        ("metrics.m IN(1,2)", metric("m", "IN", (1.0, 2.0))),
        ("metrics.m IS NULL", metric("m", "IS NULL", None)),
        ("params.p IS NOT NULL", param("p", "IS NOT NULL", None)),
        ("tags.t IS NULL", tag("t", "IS NULL", None)),
        ("attributes.end_time IS NULL", attribute("end_time", "IS NULL", None)),
    ],
)
def test_each_operator(text: str, expected: Comparison) -> None:
    assert parse_filter(text) == expected


def test_operator_text_is_not_whitespace_sensitive() -> None:
    assert parse_filter("params.p   NOT \n ILIKE\t'x'") == param("p", "NOT ILIKE", "x")
    assert parse_filter("  metrics.m\t=\n2  ") == metric("m", "=", 2.0, position=2)


def test_keywords_are_case_insensitive() -> None:
    text = "metrics.a = 1 and not metrics.b in (1) Or tags.t iLike 'x' AnD tags.u is NOT null"
    assert parse_filter(text) == Or(
        (
            And((metric("a", "=", 1.0), Not(metric("b", "IN", (1.0,), position=22)))),
            And((tag("t", "ILIKE", "x", position=42), tag("u", "IS NOT NULL", None, position=63))),
        )
    )


@pytest.mark.parametrize("text", ["params.p not like 'x'", "params.p NoT LiKe 'x'"])
def test_negated_operators_are_normalised_to_upper_case(text: str) -> None:
    assert parse_filter(text) == param("p", "NOT LIKE", "x")


# --- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "entity"),
    [
        ("metric", ENTITY_METRIC),
        ("metrics", ENTITY_METRIC),
        ("METRICS", ENTITY_METRIC),
        ("param", ENTITY_PARAM),
        ("params", ENTITY_PARAM),
        ("parameter", ENTITY_PARAM),
        ("parameters", ENTITY_PARAM),
        ("Params", ENTITY_PARAM),
        ("tag", ENTITY_TAG),
        ("tags", ENTITY_TAG),
        ("TAGS", ENTITY_TAG),
        ("attribute", ENTITY_ATTRIBUTE),
        ("attributes", ENTITY_ATTRIBUTE),
        ("attr", ENTITY_ATTRIBUTE),
        ("run", ENTITY_ATTRIBUTE),
        ("Attributes", ENTITY_ATTRIBUTE),
    ],
)
def test_every_entity_alias(prefix: str, entity: str) -> None:
    name = "run_id" if entity == ENTITY_ATTRIBUTE else "x"
    result = parse_filter(f"{prefix}.{name} IS NULL")
    assert result == Comparison(Key(entity, name, 0), "IS NULL", None)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("metrics.`faithfulness/v1/mean` > 0", Key(ENTITY_METRIC, "faithfulness/v1/mean", 0)),
        ('params."learning rate" = 1', Key(ENTITY_PARAM, "learning rate", 0)),
        ("params.`learning rate` = 1", Key(ENTITY_PARAM, "learning rate", 0)),
        ("tags.`a,b (c)` = 1", Key(ENTITY_TAG, "a,b (c)", 0)),
        ("tags.`it's` = 1", Key(ENTITY_TAG, "it's", 0)),
        ('tags."AND" = 1', Key(ENTITY_TAG, "AND", 0)),
        ("attributes.`run_name` = 'x'", Key(ENTITY_ATTRIBUTE, "run_name", 0)),
    ],
)
def test_quoted_keys(text: str, key: Key) -> None:
    result = parse_filter(text)
    assert isinstance(result, Comparison)
    assert result.key == key


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("metrics.faithfulness/v1/mean > 0", "faithfulness/v1/mean"),
        ("tags.mlflow.user = 'x'", "mlflow.user"),
        ("tags.mlflow.source.git.commit = 'x'", "mlflow.source.git.commit"),
        ("params.top-k = 'x'", "top-k"),
        ("params.2nd_stage = 'x'", "2nd_stage"),
    ],
)
def test_unquoted_names_keep_everything_after_the_first_dot(text: str, name: str) -> None:
    result = parse_filter(text)
    assert isinstance(result, Comparison)
    assert result.key.name == name


@pytest.mark.parametrize("name", ["and", "OR", "not", "in", "like", "is", "null", "desc"])
def test_keyword_names_are_ordinary_names(name: str) -> None:
    assert parse_filter(f"metrics.{name} = 1 AND tags.{name} IS NULL") == And(
        (metric(name, "=", 1.0), tag(name, "IS NULL", None, position=len(f"metrics.{name} = 1 AND ")))
    )


@pytest.mark.parametrize("name", ATTRIBUTES)
def test_every_attribute_is_accepted(name: str) -> None:
    assert parse_filter(f"attributes.{name} IS NOT NULL") == attribute(name, "IS NOT NULL", None)


@pytest.mark.parametrize(("alias", "name"), [("name", "run_name"), ("id", "run_id")])
def test_attribute_aliases(alias: str, name: str) -> None:
    assert parse_filter(f"attributes.{alias} = 'x'") == attribute(name, "=", "x")


def test_mlflow_run_name_tag_is_the_run_name_attribute() -> None:
    assert parse_filter("tags.mlflow.runName = 'x'") == attribute("run_name", "=", "x")
    assert parse_filter("tags.`mlflow.runName` LIKE 'x%'") == attribute("run_name", "LIKE", "x%")
    assert parse_order_by("tags.mlflow.runName DESC") == [OrderBy(Key(ENTITY_ATTRIBUTE, "run_name", 0), False)]
    assert parse_filter("tags.mlflow.runname = 'x'") == tag("mlflow.runname", "=", "x")  # tag names are exact


def test_key_positions_point_at_each_key() -> None:
    text = "metrics.a = 1 AND (params.b = 'x' OR NOT tags.c = 'y')"
    assert parse_filter(text) == And(
        (
            metric("a", "=", 1.0, position=0),
            Or(
                (
                    param("b", "=", "x", position=text.index("params.b")),
                    Not(tag("c", "=", "y", position=text.index("tags.c"))),
                )
            ),
        )
    )


# --- precedence and grouping -------------------------------------------------------------

A = "metrics.a = 1"
B = "metrics.b = 2"
C = "metrics.c = 3"
_VALUES = {"a": 1.0, "b": 2.0, "c": 3.0}


def at(text: str, name: str) -> Comparison:
    """Comparison A, B or C, positioned where it first occurs in ``text``."""
    return metric(name, "=", _VALUES[name], text.index(f"metrics.{name}"))


def test_and_binds_tighter_than_or() -> None:
    text = f"{A} OR {B} AND {C}"
    assert parse_filter(text) == Or((at(text, "a"), And((at(text, "b"), at(text, "c")))))

    text = f"{A} AND {B} OR {C}"
    assert parse_filter(text) == Or((And((at(text, "a"), at(text, "b"))), at(text, "c")))


def test_not_binds_tighter_than_and_and_or() -> None:
    text = f"NOT {A} AND {B}"
    assert parse_filter(text) == And((Not(at(text, "a")), at(text, "b")))

    text = f"NOT {A} OR {B}"
    assert parse_filter(text) == Or((Not(at(text, "a")), at(text, "b")))


def test_parentheses_override_precedence() -> None:
    text = f"({A} OR {B}) AND {C}"
    assert parse_filter(text) == And((Or((at(text, "a"), at(text, "b"))), at(text, "c")))

    text = f"NOT ({A} AND {B}) OR {C}"
    assert parse_filter(text) == Or((Not(And((at(text, "a"), at(text, "b")))), at(text, "c")))


def test_double_negation_is_kept() -> None:
    assert parse_filter(f"NOT NOT {A}") == Not(Not(metric("a", "=", 1.0, 8)))


def test_redundant_parentheses_disappear() -> None:
    assert parse_filter(f"(({A}))") == metric("a", "=", 1.0, 2)


def test_same_kind_is_flattened() -> None:
    text = f"{A} AND {B} AND {C}"
    assert parse_filter(text) == And((at(text, "a"), at(text, "b"), at(text, "c")))

    text = f"({A} OR {B}) OR ({C} OR {A})"
    last_a = metric("a", "=", 1.0, text.rindex("metrics.a"))
    assert parse_filter(text) == Or((at(text, "a"), at(text, "b"), at(text, "c"), last_a))

    text = f"{A} AND ({B} AND {C})"
    assert parse_filter(text) == And((at(text, "a"), at(text, "b"), at(text, "c")))


def test_different_kinds_are_not_flattened() -> None:
    text = f"{A} AND ({B} OR {C})"
    assert parse_filter(text) == And((at(text, "a"), Or((at(text, "b"), at(text, "c")))))

    text = f"{A} AND NOT ({B} AND {C})"
    assert parse_filter(text) == And((at(text, "a"), Not(And((at(text, "b"), at(text, "c"))))))


# --- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("0", 0.0),
        ("42", 42.0),
        ("-7", -7.0),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        (".5", 0.5),
        ("-.5", -0.5),
        ("3.", 3.0),
        ("2e-5", 2e-5),
        ("1E3", 1000.0),
        ("-1.5e+2", -150.0),
        (".5e1", 5.0),
        ("1700000000000", 1_700_000_000_000.0),
    ],
)
def test_numbers_in_all_forms(literal: str, value: float) -> None:
    result = parse_filter(f"metrics.m >= {literal}")
    assert result == metric("m", ">=", value)
    assert isinstance(result.value, float)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'plain'", "plain"),
        ('"double"', "double"),
        ("''", ""),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'back\\\\slash'", "back\\slash"),
        ("'ends with backslash\\\\'", "ends with backslash\\"),
        ("'\"double\" inside single'", '"double" inside single'),
        ('"\'single\' inside double"', "'single' inside double"),
        ("'100\\%'", "100\\%"),
        ("'AND OR NOT ( ) , metrics.x = 1'", "AND OR NOT ( ) , metrics.x = 1"),
        ("'ünïcode ✓'", "ünïcode ✓"),
        ("'two\nlines'", "two\nlines"),
    ],
)
def test_strings_and_escapes(literal: str, value: str) -> None:
    assert parse_filter(f"params.p = {literal}") == param("p", "=", value)


def test_double_quotes_in_value_position_are_a_string() -> None:
    assert parse_filter('params."p" = "v"') == param("p", "=", "v")
    assert parse_filter('tags.t IN ("a", \'b\')') == tag("t", "IN", ("a", "b"))


# --- params and tags are text ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.lr = 2e-5", param("lr", "=", "2e-5")),
        ("params.top_k = 5", param("top_k", "=", "5")),
        ("params.t != -1.50", param("t", "!=", "-1.50")),
        ("params.t = .5", param("t", "=", ".5")),
        ("params.k IN (1, '2', 3.0)", param("k", "IN", ("1", "2", "3.0"))),
        ("params.k NOT IN (10)", param("k", "NOT IN", ("10",))),
        ("tags.build = 1234", tag("build", "=", "1234")),
        ("params.p < '5'", param("p", "<", "5")),
        ("tags.t >= 'b'", tag("t", ">=", "b")),
    ],
)
def test_params_and_tags_compare_as_text(text: str, expected: Comparison) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
@pytest.mark.parametrize("entity", ["params", "tags"])
def test_ordering_a_text_key_against_a_number_is_refused(entity: str, op: str) -> None:
    text = f"{entity}.p {op} 5"
    err = filter_error(text)
    assert err.position == text.index("5")
    assert "is text" in err.problem
    assert "quote the value ('5')" in err.problem


@pytest.mark.parametrize("op", ["LIKE", "NOT ILIKE"])
def test_pattern_must_be_a_string(op: str) -> None:
    text = f"params.p {op} 5"
    err = filter_error(text)
    assert err.position == text.index("5")
    assert "quote the value" in err.problem


# --- metrics are numbers -----------------------------------------------------------------


def test_metric_compared_with_a_string_is_refused() -> None:
    err = filter_error("metrics.m = '0.5'")
    assert err.position == 12
    assert "compares with numbers" in err.problem


def test_metric_in_list_must_hold_numbers() -> None:
    text = "metrics.m IN (1, 'two', 3)"
    err = filter_error(text)
    assert err.position == text.index("'two'")
    assert "compares with numbers" in err.problem


@pytest.mark.parametrize("op", ["LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"])
def test_metric_pattern_match_is_refused_at_the_operator(op: str) -> None:
    err = filter_error(f"metrics.m {op} '1%'")
    assert err.position == 10
    assert "LIKE" in err.problem and "number" in err.problem


# --- attributes --------------------------------------------------------------------------


def test_time_attributes_compare_with_numbers() -> None:
    assert parse_filter("attributes.start_time >= 1700000000000") == attribute(
        "start_time", ">=", 1_700_000_000_000.0
    )
    assert parse_filter("run.end_time IN (1, 2)") == attribute("end_time", "IN", (1.0, 2.0))


def test_time_attribute_compared_with_a_string_is_refused() -> None:
    text = "attributes.start_time > '2024-01-01'"
    err = filter_error(text)
    assert err.position == text.index("'")
    assert "milliseconds" in err.problem


def test_time_attribute_pattern_match_is_refused() -> None:
    err = filter_error("attributes.end_time LIKE '17%'")
    assert err.position == 20
    assert "LIKE" in err.problem


def test_text_attributes_compare_with_strings() -> None:
    assert parse_filter("attributes.run_name LIKE 'base%'") == attribute("run_name", "LIKE", "base%")
    assert parse_filter("attr.user_id != 'bob'") == attribute("user_id", "!=", "bob")
    assert parse_filter("run.run_id IN ('a1', 'b2')") == attribute("run_id", "IN", ("a1", "b2"))


def test_experiment_id_accepts_numbers_as_text() -> None:
    assert parse_filter("attributes.experiment_id = 3") == attribute("experiment_id", "=", "3")
    assert parse_filter("attributes.experiment_id IN (1, '2')") == attribute(
        "experiment_id", "IN", ("1", "2")
    )


def test_other_text_attributes_refuse_numbers() -> None:
    text = "attributes.run_name = 5"
    err = filter_error(text)
    assert err.position == text.index("5")
    assert "quote the value" in err.problem


@pytest.mark.parametrize(
    ("literal", "status"),
    [("'RUNNING'", "RUNNING"), ("'finished'", "FINISHED"), ('"Failed"', "FAILED"), ("'killed'", "KILLED")],
)
def test_status_is_normalised_to_upper_case(literal: str, status: str) -> None:
    assert parse_filter(f"attributes.status = {literal}") == attribute("status", "=", status)


def test_status_in_list_is_validated_and_normalised() -> None:
    assert parse_filter("attributes.status NOT IN ('failed', 'KILLED')") == attribute(
        "status", "NOT IN", ("FAILED", "KILLED")
    )
    text = "attributes.status IN ('FAILED', 'DONE')"
    err = filter_error(text)
    assert err.position == text.index("'DONE'")
    assert "RUNNING, FINISHED, FAILED, KILLED" in err.problem


def test_unknown_status_is_refused() -> None:
    err = filter_error("attributes.status != 'complete'")
    assert err.position == 21
    assert "'complete'" in err.problem
    assert "RUNNING, FINISHED, FAILED, KILLED" in err.problem


def test_status_patterns_are_not_validated() -> None:
    assert parse_filter("attributes.status LIKE 'F%'") == attribute("status", "LIKE", "F%")


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        # lexing
        ("params.p = 'abc", 11, "unterminated string"),
        ('params.p = "abc', 11, "unterminated string"),
        ("params.p = 'it\\'", 11, "unterminated string"),
        ("params.`abc = 1", 7, "unterminated quoted key"),
        ('params."abc = 1', 7, "unterminated quoted key"),
        ("metrics.m = 1 ; metrics.n = 2", 14, "unexpected ';'"),
        ("accuracy > 0.5", 0, "expected a key such as metrics.accuracy"),
        ("metrics.m = 1 ORDER BY x", 14, "unexpected 'ORDER'"),
        # parsing
        ("metrics.m1 >> 3", 12, "expected a value"),
        ("metrics.m == 3", 11, "expected a value"),
        ("metrics.m =", 11, "unexpected end of filter"),
        ("metrics.m = ", 11, "expected a value (a number or a quoted string)"),
        ("metrics.m", 9, "expected a comparison operator such as =, >, LIKE, IN"),
        ("metrics.m 3", 10, "expected a comparison operator"),
        ("metrics.m NOT = 3", 14, "expected LIKE, ILIKE or IN"),
        ("metrics.m IS 3", 13, "expected NOT or NULL"),
        ("metrics.m IS NOT", 16, "expected NULL"),
        ("metrics.m IN 3", 13, "expected '('"),
        ("metrics.m IN ()", 14, "IN needs at least one value"),
        ("metrics.m NOT IN ( )", 19, "NOT IN needs at least one value"),
        ("metrics.m IN (1,)", 16, "expected a value"),
        ("metrics.m IN (1 2)", 16, "expected ',' or ')'"),
        ("metrics.m IN (1", 15, "unexpected end of filter; expected ',' or ')'"),
        ("metrics.m = 1 metrics.n = 2", 14, "expected AND or OR"),
        ("(metrics.m = 1 metrics.n = 2)", 15, "expected AND, OR or ')'"),
        ("metrics.m = 1 AND", 17, "expected a key"),
        ("metrics.m = 1 AND OR metrics.n = 2", 18, "unexpected 'OR'"),
        ("NOT", 3, "unexpected end of filter"),
        ("'x' = params.p", 0, "expected a key"),
        # parentheses
        ("(metrics.m = 1", 14, "expected ')'"),
        ("((metrics.m = 1) AND metrics.n = 2", 34, "unexpected end of filter; expected ')'"),
        ("metrics.m = 1)", 13, "unmatched ')'"),
        ("(metrics.m = 1))", 15, "unmatched ')'"),
        ("()", 1, "expected a key"),
        ("metrics.m = (1)", 12, "expected a value"),
        # keys
        ("foo.bar = 1", 0, "unknown key prefix 'foo'"),
        ("metrics.m = 1 AND metric_s.x = 2", 18, "unknown key prefix 'metric_s'"),
        ("attributes.colour = 'red'", 0, "unknown attribute 'colour'"),
        ("params.`` = 1", 0, "name is empty"),
    ],
)
def test_errors_carry_message_and_position(text: str, position: int, fragment: str) -> None:
    err = filter_error(text)
    assert fragment in err.problem
    assert err.position == position
    assert err.text == text


def test_unknown_entity_lists_valid_prefixes() -> None:
    err = filter_error("metricz.m = 1")
    assert err.position == 0
    for prefix in ("metrics.", "params.", "parameters.", "tags.", "attributes.", "attr.", "run."):
        assert prefix in err.problem


def test_unknown_attribute_lists_attributes() -> None:
    err = filter_error("metrics.m = 1 OR attributes.owner = 'x'")
    assert err.position == 17
    for name in ATTRIBUTES:
        assert name in err.problem


def test_error_message_quotes_the_text_with_a_caret() -> None:
    err = filter_error("metrics.m >> 3")
    assert isinstance(err, InvalidArgument)
    assert str(err).endswith("\n  metrics.m >> 3\n" + " " * (2 + 11) + "^")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("params.p = 'x\\'; DROP TABLE runs; --'", "x'; DROP TABLE runs; --"),
        ("params.p = \"x'; DROP TABLE runs; --\"", "x'; DROP TABLE runs; --"),
        ("params.p = 'Robert\\'); DROP TABLE runs;--'", "Robert'); DROP TABLE runs;--"),
        ("params.p = '1 OR 1=1'", "1 OR 1=1"),
    ],
)
def test_injection_looking_strings_are_plain_values(text: str, value: str) -> None:
    assert parse_filter(text) == param("p", "=", value)


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("params.p = 'x'; DROP TABLE runs; --'", 14),
        ("params.p = 'x''; DROP TABLE runs; --'", 14),
        ("params.p = 'x' OR 1=1", 18),
        ("params.p = 'x' -- comment", 15),
        ("params.p = 'x' /* c */", 15),
        ("params.p = x", 11),
    ],
)
def test_injection_looking_text_outside_strings_is_an_error(text: str, position: int) -> None:
    assert filter_error(text).position == position


COMPLEX_FILTERS = [
    "metrics.`faithfulness/v1/mean` >= 0.8 AND (params.model IN ('gpt-4o', \"o3\") "
    "OR NOT tags.mlflow.runName LIKE 'base\\'%') AND attributes.status != 'failed'",
    'params."learning rate" = 2e-5 or run.end_time IS NOT NULL and metrics.x not in (-.5, 1E3)',
    "attr.start_time > 17 AND tags.t NOT ILIKE \"%x%\" OR attributes.experiment_id = 3",
]


@pytest.mark.parametrize("text", COMPLEX_FILTERS)
def test_every_prefix_parses_or_raises_a_filter_error(text: str) -> None:
    assert parse_filter(text) is not None
    for end in range(len(text)):
        prefix = text[:end]
        try:
            parse_filter(prefix)
        except FilterSyntaxError as err:
            assert 0 <= err.position <= len(prefix)
            assert err.problem


@pytest.mark.parametrize(
    "text",
    ["`", '"', "'", "\\", ".", "metrics.", "metrics..", "=", "@#$", "metrics.m = 1 AND (", "\x00", "1 = 1"],
)
def test_garbage_raises_a_filter_error(text: str) -> None:
    err = filter_error(text)
    assert 0 <= err.position <= len(text)


# --- order_by ----------------------------------------------------------------------------


@pytest.mark.parametrize("clauses", [None, [], "", "  ", ["", " "]])
def test_no_order_by(clauses: list[str] | str | None) -> None:
    assert parse_order_by(clauses) == []


@pytest.mark.parametrize(
    ("clause", "ascending"),
    [
        ("metrics.m", True),
        ("metrics.m ASC", True),
        ("metrics.m asc", True),
        ("metrics.m DESC", False),
        ("metrics.m Desc", False),
    ],
)
def test_order_by_direction(clause: str, ascending: bool) -> None:
    assert parse_order_by(clause) == [OrderBy(Key(ENTITY_METRIC, "m", 0), ascending)]


def test_order_by_list_of_clauses() -> None:
    assert parse_order_by(["metrics.`f/v1/mean` DESC", "attributes.start_time", "run.name ASC"]) == [
        OrderBy(Key(ENTITY_METRIC, "f/v1/mean", 0), False),
        OrderBy(Key(ENTITY_ATTRIBUTE, "start_time", 0), True),
        OrderBy(Key(ENTITY_ATTRIBUTE, "run_name", 0), True),
    ]


def test_order_by_comma_separated_string() -> None:
    text = 'metrics.m DESC, params."a, b" , tags.mlflow.runName asc'
    assert parse_order_by(text) == [
        OrderBy(Key(ENTITY_METRIC, "m", 0), False),
        OrderBy(Key(ENTITY_PARAM, "a, b", text.index("params")), True),
        OrderBy(Key(ENTITY_ATTRIBUTE, "run_name", text.index("tags")), True),  # MLflow's run-name tag
    ]


def test_order_by_backquoted_commas_do_not_split() -> None:
    assert parse_order_by(["params.`x,y` desc, metrics.z"]) == [
        OrderBy(Key(ENTITY_PARAM, "x,y", 0), False),
        OrderBy(Key(ENTITY_METRIC, "z", 19), True),
    ]


@pytest.mark.parametrize(
    ("clauses", "position", "fragment"),
    [
        ("metrics.m DESC foo", 15, "unexpected 'foo'"),
        ("metrics.m DESC ASC", 15, "expected ','"),
        ("metrics.m metrics.n", 10, "expected ASC, DESC or ','"),
        ("metrics.m,", 10, "unexpected end of order_by clause"),
        ("metrics.m, , metrics.n", 11, "expected a key"),
        ("metrics.m = 1", 10, "unexpected '='"),
        ("m DESC", 0, "expected a key"),
        ("foo.m DESC", 0, "unknown key prefix 'foo'"),
        ("attributes.nope", 0, "unknown attribute 'nope'"),
        ("params.`p DESC", 7, "unterminated quoted key"),
        (["metrics.m", "tags.t DESC; DROP TABLE runs"], 11, "unexpected ';'"),
    ],
)
def test_order_by_errors(clauses: list[str] | str, position: int, fragment: str) -> None:
    err = order_by_error(clauses)
    assert fragment in err.problem
    assert err.position == position


def test_order_by_error_quotes_the_clause_at_fault() -> None:
    err = order_by_error(["metrics.m", "tags.t sideways"])
    assert err.text == "tags.t sideways"
    assert err.position == 7
