"""The suite's result as Markdown for a pull-request comment: the verdict, then each pair's
gates in a table, with the worst rows of each failed gate. Text from the runs (inputs, outputs,
errors) is escaped so that it cannot break the table or inject markup."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.suite.gates import ERROR, FAILED, PASSED, SKIPPED, GateResult

if TYPE_CHECKING:
    from evalkit.suite.job import SuiteResult

_ICONS = {PASSED: "✅", FAILED: "❌", ERROR: "⚠️", SKIPPED: "⏭️"}
_VERDICT = {PASSED: "all gates passed", FAILED: "a gate failed (regression)",
            ERROR: "the job could not run every gate (outage or setup problem)"}
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~])")


def escape(text: object) -> str:
    """Text safe inside a Markdown table cell: special characters escaped, one line."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text).split()))


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def summary_markdown(result: SuiteResult) -> str:
    lines = [f"## evalkit suite `{result.suite}`: {_ICONS[result.status]} {_VERDICT[result.status]}", ""]
    baseline = (f"baseline: suite run `{result.baseline.run_id}` ({result.baseline.source})" if result.baseline
                else "baseline: none yet (the first passing run becomes the baseline)")
    lines += [f"suite run `{result.run_id}` · {baseline} · {result.seconds:.1f} s", ""]
    for pair in result.pairs:
        lines.append(f"### {_ICONS[pair.status]} {escape(pair.dataset)} × {escape(pair.model)}")
        lines.append("")
        if pair.error:
            lines += [f"**Could not evaluate:** {escape(pair.error)}", ""]
        if pair.run_id:
            report = f" · report `{pair.report_path}`" if pair.report_path else ""
            lines += [f"run `{pair.run_id}`{report}", ""]
        if pair.gates:
            lines += ["| gate | result | value | baseline | change | p (adjusted) |", "|---|---|---|---|---|---|"]
            for gate in pair.gates:
                p = "–" if gate.p_value is None else f"{gate.p_value:.4f}" + (
                    f" ({gate.p_adjusted:.4f})" if gate.p_adjusted is not None and gate.p_adjusted != gate.p_value else "")
                change = "–" if gate.delta is None else f"{gate.delta:+.4g}"
                lines.append(f"| {escape(gate.name)} | {_ICONS[gate.status]} {gate.status} | {_number(gate.observed)} "
                             f"| {_number(gate.baseline)} | {change} | {p} |")
            lines.append("")
        for gate in pair.gates:
            if gate.status in (FAILED, ERROR):
                lines += _explain(gate)
    return "\n".join(lines).rstrip() + "\n"


def _explain(gate: GateResult) -> list[str]:
    lines = [f"<details><summary>{_ICONS[gate.status]} {html.escape(gate.name)}</summary>", "", escape(gate.message), ""]
    if gate.worst_rows:
        lines += ["| row | value | baseline | input | output |", "|---|---|---|---|---|"]
        for row in gate.worst_rows:
            lines.append(f"| {row['row']} | {_number(row['value'])} | {_number(row.get('baseline'))} "
                         f"| {escape(row.get('input') or '')} | {escape(row.get('output') or row.get('error') or '')} |")
        lines.append("")
    return [*lines, "</details>", ""]


def write_summary(result: SuiteResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(summary_markdown(result), encoding="utf-8")
    return path
