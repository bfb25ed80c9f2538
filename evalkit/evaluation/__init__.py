"""Evaluation: from a dataset and a model to a scored, logged run.

``config`` (``EvalConfig``: every option of an evaluation, its rule and its meaning), ``plan``
(everything checked and resolved before the first paid call), ``engine`` (``evaluate()`` and
``execute(plan)``), ``data`` (data in, one canonical table out), ``columns`` and
``model_types`` (what evaluate() looks for), ``scoring`` (the public types evaluators work with),
``registry`` and ``run_evaluators`` (finding evaluators, recording which ran), ``judge`` and
``prompts`` (LLM judges and chat templates), ``journal`` (resume), ``run_metrics`` (row counts,
latency, cost).
"""
