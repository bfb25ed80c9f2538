"""The transformers flavor: a Hugging Face model saved as safetensors weights, its config, its
tokenizer files and the training arguments, loaded back as a pipeline.

``ek.log_model(model, flavor="transformers", tokenizer=tok, training_args=args, task=...)``;
``ek.load_model(uri).predict(["This product is amazing!"])`` returns what the pipeline returns
(for text classification, ``[{"label": ..., "score": ...}]``). The task is read from the model's
class when not given (``...ForSequenceClassification`` is text-classification). Loading needs
only the bundle: nothing is fetched from a model hub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit.errors import InvalidArgument
from evalkit.models.flavors.base import Flavor, LoadedModel, input_texts
from evalkit.plugins import require_extra

TRAINING_ARGS_FILE = "training_args.json"
# Model class name ending -> the pipeline task that uses it.
_TASKS = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForSeq2SeqLM", "text2text-generation"),
)


def task_of(model: Any) -> str | None:
    """The pipeline task of a model, from its class name; None when it cannot be told."""
    name = type(model).__name__
    return next((task for suffix, task in _TASKS if name.endswith(suffix)), None)


def training_args_dict(training_args: Any) -> dict[str, Any]:
    """The training arguments as a JSON-ready dict, without secrets: transformers' ``to_dict``
    already masks its ``*_token`` fields; anything else ending in ``_token`` is masked too."""
    values = training_args.to_dict() if hasattr(training_args, "to_dict") else dict(training_args)
    return {k: (f"<{k.upper()}>" if k.endswith("_token") and v is not None else v) for k, v in values.items()}


class TransformersFlavor(Flavor):
    name = "transformers"

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        """Options: ``tokenizer`` (or ``processing_class``), ``training_args``, ``task``."""
        require_extra("transformers", "transformers", "the transformers model flavor")
        import transformers

        unknown = set(options) - {"tokenizer", "processing_class", "training_args", "task"}
        if unknown:
            raise InvalidArgument(f"transformers flavor: unknown option(s) {sorted(unknown)}; "
                                  "use tokenizer, training_args, task")
        if not hasattr(model, "save_pretrained"):
            raise InvalidArgument(f"the transformers flavor saves a transformers model, not {type(model).__name__}")
        task = options.get("task") or task_of(model)
        if task is None:
            raise InvalidArgument(f"cannot tell the pipeline task of {type(model).__name__}; pass task=...")
        path.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(path, safe_serialization=True)
        tokenizer = options.get("tokenizer") or options.get("processing_class")
        if tokenizer is not None:
            tokenizer.save_pretrained(path)
        training_args = options.get("training_args")
        if training_args is not None:
            text = json.dumps(training_args_dict(training_args), indent=2, sort_keys=True, default=str)
            (path / TRAINING_ARGS_FILE).write_text(text)
        import torch

        return {
            "task": task,
            "model_class": type(model).__name__,
            "tokenizer": tokenizer is not None,
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
        }

    def load(self, path: Path, metadata: dict[str, Any]) -> LoadedModel:
        require_extra("transformers", "transformers", "the transformers model flavor")
        import transformers

        folder = str(path)
        pipeline = transformers.pipeline(
            metadata["task"], model=folder, tokenizer=folder if metadata.get("tokenizer") else None, device="cpu"
        )
        return PipelineModel(pipeline)


class PipelineModel(LoadedModel):
    """A loaded transformers model: ``predict`` runs its pipeline on every input at once."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict(self, inputs: Any) -> list[Any]:
        """``inputs``: a list of strings, or a DataFrame with an ``inputs`` (or ``question``) column."""
        return list(self.pipeline(input_texts(inputs)))
