"""The SQL tracking store: one code path for SQLite and PostgreSQL, on SQLAlchemy Core."""
