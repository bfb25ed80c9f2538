"""Moving history into evalkit from other tools' stores (``evalkit import-mlflow``)."""
