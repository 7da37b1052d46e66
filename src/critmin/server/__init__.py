"""The marketplace service: FastAPI app, sequencer (group commit), storage (SQLAlchemy + alembic)."""
