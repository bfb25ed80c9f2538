"""Package layout. Everything else is in pyproject.toml.

The built-in plugins live in the repository's top-level folders ``evaluators/`` and ``reports/``
(where a reader looks for them) but install as ``evalkit.evaluators`` and ``evalkit.reports``: as
top-level packages they would shadow, or be shadowed by, a user's own ``reports`` package.
"""
from setuptools import find_namespace_packages, setup

PLUGIN_FOLDERS = {"evalkit.evaluators": "evaluators", "evalkit.reports": "reports"}

setup(
    # namespace packages too: the data folders (tokenizers, migrations) ship inside evalkit
    packages=find_namespace_packages(include=["evalkit", "evalkit.*"], exclude=["*.__pycache__"])
    + list(PLUGIN_FOLDERS),
    package_dir=PLUGIN_FOLDERS,
)
