"""The database: SQLAlchemy 2 models, engine/session factories, accounts, alembic migrations."""
