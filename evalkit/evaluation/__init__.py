"""Evaluation: from a dataset and a model to a scored, logged run.

``engine`` (``evaluate()``), ``data`` (data in, one canonical table out), ``columns`` and
``model_types`` (what evaluate() looks for), ``scoring`` (the public types evaluators work with),
``registry`` and ``run_evaluators`` (finding evaluators, recording which ran), ``judge`` and
``prompts`` (LLM judges and chat templates), ``journal`` (resume), ``run_metrics`` (row counts,
latency, cost).
"""
