"""Models evalkit can evaluate: OpenAI-compatible endpoints, Python callables, the embedded
offline baseline, and providers registered under the ``evalkit.model_providers`` entry-point group."""
