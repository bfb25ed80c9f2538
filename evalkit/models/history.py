"""Answers from a registered model's history: which versions were in a stage, and where each
alias pointed, at a given time (replaying the recorded moves up to it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from evalkit.entities import ModelVersionEvent, Stage


@dataclass
class RegistryState:
    """Each version's stage (versions never moved are in None and not listed) and each alias's version."""

    stages: dict[int, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)

    def in_stage(self, stage: Stage | str) -> list[int]:
        name = stage.value if isinstance(stage, Stage) else stage
        return sorted(version for version, current in self.stages.items() if current == name)


def state_at(events: Sequence[ModelVersionEvent], timestamp: int) -> RegistryState:
    """The stages and aliases as they were at ``timestamp`` (ms since the epoch), from the
    history ``get_model_version_history`` returns (oldest first)."""
    state = RegistryState()
    for event in events:
        if event.timestamp > timestamp:
            break
        if event.kind == "stage" and event.version is not None:
            state.stages[event.version] = event.to_value or Stage.NONE.value
        elif event.kind == "deleted" and event.version is not None:
            state.stages.pop(event.version, None)
        elif event.kind == "alias" and event.alias is not None:
            if event.to_value is None:
                state.aliases.pop(event.alias, None)
            else:
                state.aliases[event.alias] = int(event.to_value)
    return state
