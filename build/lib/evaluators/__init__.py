"""Built-in evaluator plugins (toxicity, faithfulness, answer correctness, ...).

They depend on evalkit's public types only; evalkit never imports them directly but finds them
through the ``evalkit.evaluators`` entry-point group.
"""
