"""The evalkit tracking server (``evalkit server``): a FastAPI app serving a SQL store over REST,
with token authentication (``auth/``) and the web UI.

Needs the ``server`` extra (``pip install 'evalkit[server]'``); clients need nothing more than
evalkit itself (``set_tracking_uri("http://host:5000")``, the REST store).
"""
