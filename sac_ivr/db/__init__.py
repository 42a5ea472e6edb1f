"""Database: engine, ORM base, migrations (alembic)."""
