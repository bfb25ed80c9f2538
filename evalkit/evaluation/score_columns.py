"""One evaluator's scores of every row of a run, kept compactly for its aggregates.

evaluate() scores rows a chunk at a time and writes each chunk's scores to the results table;
what the aggregates need of every row stays here as arrays (a few bytes a row rather than a
``Score`` object), and :meth:`ScoreColumns.scores` rebuilds the list ``Evaluator.aggregate``
takes, once, at the end. The rebuilt scores carry what aggregates read (the value, the error,
whether the row applied, the named details); justifications and raw replies are in the results
table only.
"""

from __future__ import annotations

from array import array

from evalkit.evaluation.scoring import Score


class ScoreColumns:
    """Scores appended chunk by chunk, in row order."""

    def __init__(self) -> None:
        self._values = array("d")
        self._has_value = array("b")
        self._applicable = array("b")
        self._errors: dict[int, str] = {}  # row position: error (most rows have none)
        self._texts: dict[str, str] = {}  # one copy of each distinct error text
        self._details: dict[str, tuple[array, array]] = {}  # detail name: (row positions, values)

    def __len__(self) -> int:
        return len(self._values)

    def extend(self, scores: list[Score]) -> None:
        """Append one chunk's scores."""
        for score in scores:
            position = len(self._values)
            self._values.append(0.0 if score.value is None else float(score.value))
            self._has_value.append(score.value is not None)
            self._applicable.append(score.applicable)
            if score.error is not None:
                self._errors[position] = self._texts.setdefault(score.error, score.error)
            for name, value in score.details.items():
                positions, numbers = self._details.setdefault(name, (array("q"), array("d")))
                positions.append(position)
                numbers.append(value)

    def scores(self) -> list[Score]:
        """The scores as ``Evaluator.aggregate`` takes them (see the module docstring)."""
        values, has_value, applicable, errors = self._values, self._has_value, self._applicable, self._errors
        details: dict[int, dict[str, float]] = {}
        for name, (positions, numbers) in self._details.items():
            for position, number in zip(positions, numbers, strict=True):
                details.setdefault(position, {})[name] = number
        return [Score(values[i] if has_value[i] else None, error=errors.get(i), applicable=bool(applicable[i]),
                      details=details.get(i, {})) for i in range(len(values))]
