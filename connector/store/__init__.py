"""The durable store: SQLAlchemy models, migrations, repositories and the change journal."""
