"""Inference: calling models well.

``providers`` (OpenAI-compatible endpoints, Python callables, the offline baseline, model URIs),
``runner`` (concurrency, rate limits, retries, budget, progress), ``cache`` (the response cache),
``pricing`` and ``prices.json`` (what a call cost), ``tokens`` and ``tokenizers/`` (offline token
counts), ``params_check`` (inference parameters checked before any request).
"""
