"""Autologging: record what a library does into the active run without changing the user's code.

``ek.openai.autolog()`` (evalkit/autolog/openai.py) records every openai client call;
``ek.transformers.autolog()`` (evalkit/autolog/transformers.py) every Hugging Face Trainer run.
Each module is imported only when its name is first read from ``evalkit``.
"""
