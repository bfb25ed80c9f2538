"""The suite's result as JUnit XML, which CI systems show as tests: one ``<testsuite>`` per
(dataset, model) pair and one ``<testcase>`` per gate. A failed gate is a ``<failure>`` (a
regression), a gate that could not be judged an ``<error>`` (an outage), no baseline yet a
``<skipped>``. ElementTree escapes every text and attribute."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.suite.gates import ERROR, FAILED, SKIPPED, GateResult

if TYPE_CHECKING:
    from evalkit.suite.job import SuiteResult


def junit_xml(result: SuiteResult) -> str:
    root = ET.Element("testsuites", name=f"evalkit suite {result.suite}", time=f"{result.seconds:.3f}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for pair in result.pairs:
        counts = {"tests": len(pair.gates), "failures": sum(g.status == FAILED for g in pair.gates),
                  "errors": sum(g.status == ERROR for g in pair.gates),
                  "skipped": sum(g.status == SKIPPED for g in pair.gates)}
        suite = ET.SubElement(root, "testsuite", name=f"{pair.dataset} × {pair.model}", time=f"{pair.seconds:.3f}",
                              **{k: str(v) for k, v in counts.items()})
        properties = ET.SubElement(suite, "properties")
        for name, value in (("run_id", pair.run_id), ("baseline_run_id", pair.baseline_run_id),
                            ("suite_run_id", result.run_id), ("report", pair.report_path and str(pair.report_path)),
                            ("error", pair.error)):
            if value:
                ET.SubElement(properties, "property", name=name, value=str(value))
        classname = f"{result.suite}.{pair.dataset}.{pair.model}"
        for gate in pair.gates:
            case = ET.SubElement(suite, "testcase", classname=classname, name=gate.name, time="0")
            if gate.status == FAILED:
                ET.SubElement(case, "failure", message=gate.message, type=gate.kind).text = _details(gate)
            elif gate.status == ERROR:
                ET.SubElement(case, "error", message=gate.message, type=gate.kind).text = gate.message
            elif gate.status == SKIPPED:
                ET.SubElement(case, "skipped", message=gate.message)
            else:
                ET.SubElement(case, "system-out").text = gate.message
        for key, value in counts.items():
            totals[key] += value
    root.attrib.update({k: str(v) for k, v in totals.items()})
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _details(gate: GateResult) -> str:
    lines = [gate.message]
    if gate.worst_rows:
        lines.append("worst rows:")
        for row in gate.worst_rows:
            before = f" (baseline {row['baseline']:.4g})" if "baseline" in row else ""
            lines.append(f"  row {row['row']}: {row['value']:.4g}{before}  input: {row.get('input')!r}  "
                         f"output: {row.get('output')!r}")
            if row.get("justification"):
                lines.append(f"    why: {row['justification']}")
    return "\n".join(lines)


def write_junit(result: SuiteResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(result), encoding="utf-8")
    return path


def write_job_error(suite: str, message: str, path: Path) -> Path:
    """A JUnit file for a job that could not start (a bad suite file): one erroring test case,
    so that CI shows why instead of a missing file."""
    root = ET.Element("testsuites", name=f"evalkit suite {suite}", tests="1", failures="0", errors="1", skipped="0")
    suite_element = ET.SubElement(root, "testsuite", name=suite, tests="1", failures="0", errors="1", skipped="0")
    case = ET.SubElement(suite_element, "testcase", classname=suite, name="suite file", time="0")
    ET.SubElement(case, "error", message=message.splitlines()[0], type="setup").text = message
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n", encoding="utf-8")
    return path
