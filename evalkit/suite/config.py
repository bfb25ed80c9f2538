"""The suite file: what a nightly job evaluates and the gates it must pass.

A suite is YAML (``.yaml``/``.yml``) or TOML (``.toml``). It is validated whole before anything
runs; every problem is reported with the file, the line and the key at fault, e.g.
``nightly.yaml, line 14, models[0].uri: Field required``. See ``examples/nightly.yaml``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evalkit.errors import InvalidArgument
from evalkit.redaction import is_secret_name, redact
from evalkit.suite.expressions import Threshold, parse_threshold

_NAME = re.compile(r"^[A-Za-z0-9_.\- ]{1,100}$")
Location = tuple[str | int, ...]  # a key's path in the file: ("models", 0, "uri")


class SuiteConfigError(InvalidArgument):
    """A suite file that cannot be run; the message lists every problem with its line and key."""

    def __init__(self, path: Path, problems: list[tuple[int | None, str, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path.name}{f', line {line}' if line else ''}, {key or '(top level)'}: {message}"
                 for line, key, message in problems]
        super().__init__(f"invalid suite file {path}:\n  " + "\n  ".join(lines))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("use 1-100 letters, digits, spaces, '_', '-' or '.'")
    return value


def _check_threshold(value: str) -> str:
    try:
        parse_threshold(value)
    except InvalidArgument as exc:
        raise ValueError(str(exc)) from None
    return value


class DatasetSpec(_Strict):
    """One evaluation set: a CSV/JSONL/Parquet file, relative to the suite file."""

    name: str
    path: str
    targets: str | None = None
    col_mapping: dict[str, str] | None = None
    limit: int | None = Field(None, gt=0, description="evaluate only the first N rows")

    _name = field_validator("name")(_check_name)


class ModelSpec(_Strict):
    """One model under test: a model URI with its inference params and prompt."""

    name: str
    uri: str
    params: dict[str, Any] = Field(default_factory=dict)
    prompt: str | None = None

    _name = field_validator("name")(_check_name)


class BaselineRule(_Strict):
    """A comparison with the baseline run on one metric.

    ``test: paired`` (the default) fails on a statistically significant regression of the metric
    on the same rows, optionally only when it is also larger than ``min_effect``.
    ``test: tolerance`` fails when the metric is worse than the baseline's by more than
    ``tolerance``: a number in the metric's unit, or a percentage of the baseline's value.
    """

    metric: str
    test: Literal["paired", "tolerance"] | None = None
    tolerance: float | str | None = None
    min_effect: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> BaselineRule:
        kind = self.test or ("tolerance" if self.tolerance is not None else "paired")
        if kind == "tolerance" and self.tolerance is None:
            raise ValueError("test: tolerance needs tolerance: (a number, or a percentage such as '10%')")
        if kind == "paired" and self.tolerance is not None:
            raise ValueError("tolerance applies to test: tolerance; a paired test takes min_effect instead")
        if self.tolerance is not None:
            parse_tolerance(self.tolerance)
        object.__setattr__(self, "test", kind)
        return self


class BaselineSpec(_Strict):
    """Where the baseline comes from and how it is compared."""

    run: str = "last-passing"
    alpha: float = Field(0.025, gt=0, lt=0.5)
    correction: Literal["holm", "none"] = "holm"
    rules: list[BaselineRule] = Field(min_length=1)


class SuiteSpec(_Strict):
    suite: str
    description: str | None = None
    experiment: str | None = None
    datasets: list[DatasetSpec] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    model_type: str = "question-answering"
    evaluators: Literal["default"] | list[str] = "default"
    extra_metrics: list[str] = Field(default_factory=list)
    evaluator_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    judge: str | None = None
    judge_params: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = Field(16, ge=1, le=4096)
    rate_limit: float | dict[str, float] | None = None
    judge_rate_limit: float | dict[str, float] | None = None
    budget_usd: float | None = Field(None, gt=0)
    cache: Literal["on", "off", "read-only", "refresh"] = "refresh"
    timeout: float = Field(60.0, gt=0)
    max_attempts: int = Field(6, ge=1, le=20)
    # where rows are answered: local, or ray with its options (address, num_workers, batch_size, concurrency)
    executor: str = "local"
    executor_options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    thresholds: list[Annotated[str, AfterValidator(_check_threshold)]] = Field(default_factory=list)
    baseline: BaselineSpec | None = None

    _name = field_validator("suite")(_check_name)

    @field_validator("cache", mode="before")
    @classmethod
    def _yaml_switch(cls, value: object) -> object:
        # YAML 1.1 reads a bare on/off as a boolean.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("executor_options")
    @classmethod
    def _known_executor(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Checked here, so a wrong executor or option fails the file before any model call.
        from evalkit.inference.executors import get_executor

        if "executor" in info.data:
            try:
                get_executor(info.data["executor"], options)
            except InvalidArgument as exc:
                raise ValueError(str(exc)) from None
        return options

    @model_validator(mode="after")
    def _unique_names(self) -> SuiteSpec:
        for kind, items in (("datasets", self.datasets), ("models", self.models)):
            names = [item.name for item in items]
            if duplicated := sorted({n for n in names if names.count(n) > 1}):
                raise ValueError(f"{kind} names must be unique; repeated: {', '.join(duplicated)}")
        return self


@dataclass(frozen=True)
class Suite:
    """A validated suite file: the spec, where it lives, and its parsed threshold gates."""

    spec: SuiteSpec
    path: Path
    thresholds: list[Threshold]
    text: str

    @property
    def name(self) -> str:
        return self.spec.suite

    def dataset_path(self, dataset: DatasetSpec) -> Path:
        return (self.path.parent / dataset.path).resolve()


def parse_tolerance(value: float | str) -> tuple[float, bool]:
    """``(amount, relative)``: ``"10%"`` is (0.10, True); ``0.02`` or ``"0.02"`` is (0.02, False)."""
    text = str(value).strip()
    relative = text.endswith("%")
    try:
        amount = float(text.rstrip("%").strip())
    except ValueError:
        raise ValueError(f"tolerance {value!r} is not a number or a percentage such as '10%'") from None
    if amount < 0:
        raise ValueError(f"tolerance {value!r} must not be negative")
    return (amount / 100 if relative else amount), relative


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raises SuiteConfigError naming each problem's line and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read suite file {path}: {exc.strerror or exc}") from None
    raw, lines = _parse(path, text)
    if secrets := list(_secrets(raw, ())):
        raise SuiteConfigError(path, [(_line_of(lines, location), _key_text(location), message)
                                      for location, message in secrets])
    try:
        spec = SuiteSpec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = tuple(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append((_line_of(lines, location), _key_text(location), message))
        raise SuiteConfigError(path, problems) from None
    missing = [(_line_of(lines, ("datasets", i, "path")), f"datasets[{i}].path", f"no such file: {dataset.path}")
               for i, dataset in enumerate(spec.datasets) if not (path.parent / dataset.path).is_file()]
    if missing:
        raise SuiteConfigError(path, missing)
    return Suite(spec, path.resolve(), [parse_threshold(t) for t in spec.thresholds], text)


_NO_SECRETS = ("secrets do not belong in a suite file (it is logged with every run): put the key in an environment "
               "variable, OPENAI_API_KEY or another named by ?api_key_env=NAME in the model URI")


def _secrets(value: Any, location: Location) -> Iterator[tuple[Location, str]]:
    """Keys named like credentials, and values holding one (an API key, a password in a URL),
    anywhere in the file: what ``redact`` would hide is refused here."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and is_secret_name(key) and item not in (None, ""):
                yield (*location, key), _NO_SECRETS
            else:
                yield from _secrets(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secrets(item, (*location, index))
    elif isinstance(value, str) and redact(value) != value:
        yield location, _NO_SECRETS


def problem(suite: Suite, location: tuple[str | int, ...], message: str) -> SuiteConfigError:
    """A SuiteConfigError for a problem found after parsing (an unknown metric, say)."""
    _, lines = _parse(suite.path, suite.text)
    return SuiteConfigError(suite.path, [(_line_of(lines, location), _key_text(location), message)])


# ---- parsing with line numbers -------------------------------------------------------------


def _parse(path: Path, text: str) -> tuple[Any, dict[Location, int]]:
    if path.suffix.lower() == ".toml":
        try:
            return tomllib.loads(text), _toml_lines(text)
        except tomllib.TOMLDecodeError as exc:
            raise SuiteConfigError(path, [(None, "", f"not valid TOML: {exc}")]) from None
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise InvalidArgument(f"suite file {path} must end in .yaml, .yml or .toml")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SuiteConfigError(path, [_yaml_problem(text, exc)]) from None
    if not isinstance(data, dict):
        raise SuiteConfigError(path, [(1, "", "a suite file is a mapping of keys (suite:, datasets:, models:, ...)")])
    lines: dict[Location, int] = {}
    _yaml_lines(node, (), lines)
    return data, lines


_INDENTATION_SIGNS = ("expected <block end>", "mapping values are not allowed here", "could not find expected ':'")


def _yaml_problem(text: str, exc: yaml.YAMLError) -> tuple[int | None, str, str]:
    """The line and words of a YAML syntax error. The problem mark is where the parser gave up,
    which is the line at fault (a mis-indented key), unless it is the end of the file: then the
    context mark, where the unclosed construct (a bracket, a quote) starts, is."""
    problem_mark, context_mark = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    problem, context = getattr(exc, "problem", None) or str(exc), getattr(exc, "context", None)
    at_end = problem_mark is not None and not text[problem_mark.index:].strip()
    if problem_mark is None or (at_end and context_mark is not None):
        mark = context_mark
        message = f"not valid YAML: {context}: {problem}" if context else f"not valid YAML: {problem}"
    else:
        mark = problem_mark
        source = text.splitlines()[mark.line].strip() if mark.line < len(text.splitlines()) else ""
        message = f"not valid YAML at {source!r}: {problem}"
        if context and context_mark is not None and context_mark.line != mark.line:
            message += f" ({context} that starts at line {context_mark.line + 1})"
        if "'\\t'" in problem:  # PyYAML quotes the tab it found as '\t'
            message += "; YAML indents with spaces, not tabs"
        elif any(sign in problem for sign in _INDENTATION_SIGNS):
            message += ("; check this line's indentation: a key lines up with the other keys of its mapping, "
                        "a '- ' item with the other items of its list")
    return (mark.line + 1 if mark is not None else None), "", message


def _yaml_lines(node: yaml.Node, location: Location, lines: dict[Location, int]) -> None:
    lines.setdefault(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*location, key.value)
            lines[child] = key.start_mark.line + 1
            _yaml_lines(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _yaml_lines(item, (*location, index), lines)


_TOML_TABLE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_TOML_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([^\[\]]+?)\s*\]\]\s*(#.*)?$")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=\s*(.*)$")


def _toml_lines(text: str) -> dict[Location, int]:
    """Key locations of a TOML document, line by line: tables, arrays of tables, keys, and the
    items of arrays written one per line. tomllib gives no positions; this covers what suite
    files contain, and a location it misses falls back to its nearest parent."""
    lines: dict[Location, int] = {}
    table: Location = ()
    counts: dict[Location, int] = {}
    array: tuple[Location, int] | None = None  # an open multi-line array: its location, items seen
    for number, line in enumerate(text.splitlines(), 1):
        if array is not None:
            stripped = line.strip()
            if stripped.startswith("]"):
                array = None
            elif stripped and not stripped.startswith("#"):
                location, seen = array
                lines[(*location, seen)] = number
                array = (location, seen + 1)
            continue
        if match := _TOML_ARRAY_TABLE.match(line):
            path = _toml_key(match.group(1))
            index = counts.get(path, 0)
            counts[path] = index + 1
            table = (*path, index)
            lines.setdefault(path, number)
            lines[table] = number
        elif match := _TOML_TABLE.match(line):
            table = _toml_key(match.group(1))
            lines[table] = number
        elif match := _TOML_KEY.match(line):
            location = (*table, *_toml_key(match.group(1)))
            lines[location] = number
            value = match.group(2).strip()
            if value.startswith("[") and "]" not in value:
                array = (location, 0)
    return lines


def _toml_key(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def _line_of(lines: dict[Location, int], location: Location) -> int | None:
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            return lines[location[:end]]
    return None


def _key_text(location: Location) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part.startswith(("function-after", "function-before", "literal[", "str", "float", "dict")):
            text += f".{part}" if text else part
    return text
