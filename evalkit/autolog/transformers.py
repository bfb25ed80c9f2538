"""``ek.transformers.autolog()``: every Hugging Face ``Trainer`` run tracked, with no other change.

Since transformers 5 a Trainer reports to nothing unless a callback is attached (``report_to``
defaults to "none"), so the autolog attaches its own callback to every Trainer it sees
(``Trainer.__init__`` and ``Trainer.train`` are patched). Each training run logs:

- params: the training arguments (``learning_rate``, ``num_train_epochs``...) and the model config
  (``model.hidden_size``...), flattened. A value longer than a param can hold is cut with a marker
  naming ``autolog/training_args.json`` / ``autolog/model_config.json``, which keep every value
  whole; nothing is dropped and nothing fails on a long value or a large number of params;
- metrics: what the Trainer logs (``loss``, ``learning_rate``, ``grad_norm``, ``eval_loss``,
  ``eval_accuracy``..., ``train_loss``) at their global step, training values at most every
  ``log_every_n_steps`` steps plus the last one of each epoch, evaluation values always;
- the model (``log_models=True``), as the transformers flavor under ``model/``: safetensors
  weights, config, tokenizer files and training arguments; ``ek.load_model("runs:/<id>/model")``
  gives it back as a pipeline.

Training inside ``with ek.start_run(run_name=...)`` logs into that run. Without an active run,
``train()`` starts one and ends it: FINISHED, or FAILED with the error when training raises
(KILLED on Ctrl-C). A failure of the autolog itself is logged as a warning and never stops the
training.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import numbers
import re
from typing import Any

from evalkit.entities import Metric, Param, RunStatus
from evalkit.errors import InvalidArgument, MissingExtra
from evalkit.redaction import redact
from evalkit.tracking.validation import MAX_KEY_LENGTH, MAX_PARAM_VALUE_LENGTH

__all__ = ["autolog"]

TRAINING_ARGS_ARTIFACT = "autolog/training_args.json"
MODEL_CONFIG_ARTIFACT = "autolog/model_config.json"
MODEL_CONFIG_PREFIX = "model."
_log = logging.getLogger(__name__)
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-./ ]")


class _Config:
    def __init__(self, log_every_n_steps: int, log_models: bool) -> None:
        self.log_every_n_steps = log_every_n_steps
        self.log_models = log_models


_config: _Config | None = None
_originals: dict[str, Any] = {}


def autolog(*, log_every_n_steps: int = 1, log_models: bool = True, disable: bool = False) -> None:
    """Track every ``transformers.Trainer`` run (see the module docstring).

    ``log_every_n_steps`` thins the training metrics (the Trainer logs every
    ``args.logging_steps``; evalkit keeps at most one point per ``log_every_n_steps`` steps, and
    the last of each epoch). ``log_models`` logs the trained model under ``model/``.
    ``disable=True`` removes the patches. Needs the ``transformers`` extra.
    """
    global _config
    if disable:
        _unpatch()
        _config = None
        return
    if isinstance(log_every_n_steps, bool) or not isinstance(log_every_n_steps, int) or log_every_n_steps < 1:
        raise InvalidArgument(f"log_every_n_steps must be a positive integer, got {log_every_n_steps!r}")
    try:
        import transformers
    except ImportError:
        raise MissingExtra("ek.transformers.autolog()", "transformers", "transformers") from None
    _config = _Config(log_every_n_steps, bool(log_models))
    _patch(transformers.Trainer)


def _patch(trainer_class: type) -> None:
    if _originals:
        return
    original_init, original_train = trainer_class.__init__, trainer_class.train
    _originals.update(init=original_init, train=original_train, owner=trainer_class)

    @functools.wraps(original_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if _config is not None:
            _safely("attaching the callback", _attach, self)

    @functools.wraps(original_train)
    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _config is None:
            return original_train(self, *args, **kwargs)
        _safely("attaching the callback", _attach, self)
        started = _safely("starting a run", _start_run_if_none)
        try:
            result = original_train(self, *args, **kwargs)
        except BaseException as exc:
            if started:
                _safely("ending the run", _end_failed, exc)
            raise
        if started:
            _safely("ending the run", _end_finished)
        return result

    trainer_class.__init__ = __init__
    trainer_class.train = train


def _unpatch() -> None:
    if _originals:
        owner = _originals["owner"]
        owner.__init__, owner.train = _originals["init"], _originals["train"]
        _originals.clear()


def _safely(what: str, action: Any, *args: Any) -> Any:
    try:
        return action(*args)
    except Exception:  # noqa: BLE001 - the autolog must never stop a training run
        _log.warning("evalkit transformers autolog: %s failed; training goes on", what, exc_info=True)
        return None


def _attach(trainer: Any) -> None:
    if not any(isinstance(cb, _callback_class()) for cb in trainer.callback_handler.callbacks):
        trainer.add_callback(_callback_class()())


def _start_run_if_none() -> bool:
    from evalkit.tracking import fluent

    if fluent.active_run() is not None:
        return False
    fluent.start_run(tags={"evalkit.source": "autolog.transformers"})
    return True


def _end_failed(exc: BaseException) -> None:
    from evalkit.tracking import fluent

    if isinstance(exc, KeyboardInterrupt):
        fluent.end_run(RunStatus.KILLED, "interrupted (Ctrl-C) during training")
    else:
        fluent.end_run(RunStatus.FAILED, f"training raised {type(exc).__name__}: {exc}")


def _end_finished() -> None:
    from evalkit.tracking import fluent

    fluent.end_run(RunStatus.FINISHED)


# ---- params -------------------------------------------------------------------------------


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists and other values as they are."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, sort_keys=isinstance(value, dict))
    return str(value)


def as_params(values: dict[str, Any], prefix: str, artifact: str) -> dict[str, str]:
    """``values`` flattened into storable params: keys made valid (characters a key cannot hold
    become ``_``; a key too long keeps its end), values cut to the param limit with a marker
    naming ``artifact``, where they are kept whole."""
    marker = f"... [truncated: the whole value is in the run's {artifact}]"
    params: dict[str, str] = {}
    for key, value in flatten(values, prefix).items():
        key = _BAD_KEY_CHARS.sub("_", key)[-MAX_KEY_LENGTH:]
        text = redact(param_text(value))
        if len(text) > MAX_PARAM_VALUE_LENGTH:
            text = text[: MAX_PARAM_VALUE_LENGTH - len(marker)] + marker
        params.setdefault(key, text)
    return params


def _log_params(run_id: str, args: Any, model: Any) -> None:
    from evalkit.models.flavors.transformers import training_args_dict
    from evalkit.tracking.client import TrackingClient

    client = TrackingClient()
    training_args = training_args_dict(args)
    config = model.config.to_dict() if model is not None and hasattr(model, "config") else {}
    client.log_text(run_id, json.dumps(training_args, indent=2, sort_keys=True, default=str), TRAINING_ARGS_ARTIFACT)
    client.log_text(run_id, json.dumps(config, indent=2, sort_keys=True, default=str), MODEL_CONFIG_ARTIFACT)
    params = {**as_params(config, MODEL_CONFIG_PREFIX, MODEL_CONFIG_ARTIFACT),
              **as_params(training_args, "", TRAINING_ARGS_ARTIFACT)}
    # Params never change: a second training in the same run keeps the first values of keys it
    # shares (both trainings' values are in the JSON artifacts, rewritten by the later one).
    existing = client.get_run(run_id).data.params
    clashes = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
    if clashes:
        _log.warning("evalkit transformers autolog: run %s already has other values for %d params (%s...); "
                     "they are kept, the new values are in %s", run_id, len(clashes), clashes[0],
                     TRAINING_ARGS_ARTIFACT)
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items() if k not in existing])


# ---- the callback -------------------------------------------------------------------------

_CALLBACK: type | None = None


def _callback_class() -> type:
    """The callback class, defined on first use so that importing this module needs no transformers."""
    global _CALLBACK
    if _CALLBACK is None:
        from transformers import TrainerCallback

        class EvalkitCallback(TrainerCallback):
            """Logs a Trainer's params, metrics and model into the active evalkit run."""

            def __init__(self) -> None:
                self.run_id: str | None = None
                self.last_logged_step = -math.inf
                self.held: dict[str, float] | None = None  # the last training values thinned away
                self.held_step = 0

            def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
                _safely("logging params", self._begin, args, model)

            def _begin(self, args: Any, model: Any) -> None:
                from evalkit.tracking import fluent

                run = fluent.active_run()
                self.run_id = run.info.run_id if run is not None else None
                self.last_logged_step, self.held = -math.inf, None
                if self.run_id is not None:
                    _log_params(self.run_id, args, model)

            def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                       **kwargs: Any) -> None:
                _safely("logging metrics", self._on_log, state, logs or {})

            def _on_log(self, state: Any, logs: dict[str, Any]) -> None:
                if self.run_id is None:
                    return
                values = {k: float(v) for k, v in logs.items()
                          if isinstance(v, numbers.Real) and not isinstance(v, bool)}
                step = int(state.global_step)
                training = not any(k.startswith(("eval_", "test_")) for k in values) and "train_runtime" not in values
                if training and step - self.last_logged_step < _config_every():
                    self.held, self.held_step = values, step
                    return
                self._write(values, step)
                if training:
                    self.last_logged_step, self.held = step, None

            def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                _safely("logging metrics", self._epoch_end)

            def _epoch_end(self) -> None:
                if self.run_id is not None and self.held is not None:
                    self._write(self.held, self.held_step)
                    self.last_logged_step, self.held = self.held_step, None

            def _write(self, values: dict[str, float], step: int) -> None:
                from evalkit.tracking.client import TrackingClient
                from evalkit.tracking.clock import now_ms

                timestamp = now_ms()
                metrics = [Metric(_BAD_KEY_CHARS.sub("_", k), v, timestamp, step) for k, v in values.items()]
                TrackingClient().log_batch(self.run_id, metrics=metrics)

            def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
                tokenizer = kwargs.get("processing_class") or kwargs.get("tokenizer")
                _safely("logging the model", self._end, args, model, tokenizer)

            def _end(self, args: Any, model: Any, tokenizer: Any) -> None:
                self._epoch_end()
                if self.run_id is None or model is None or _config is None or not _config.log_models:
                    return
                import evalkit as ek

                ek.log_model(model, artifact_path="model", flavor="transformers", tokenizer=tokenizer,
                             training_args=args)

        _CALLBACK = EvalkitCallback
    return _CALLBACK


def _config_every() -> int:
    return _config.log_every_n_steps if _config is not None else 1
