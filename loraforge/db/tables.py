"""Every table module of loraforge, imported in one place so `Base.metadata` holds the whole schema.

Alembic's env.py imports this module, so autogenerate and `alembic check` compare the database
with every table the package defines. A new module of tables is imported here, or autogenerate
would propose dropping its tables.
"""

from __future__ import annotations

from loraforge.db import job_models, models, training_models, webhook_models  # noqa: F401  (registering on Base.metadata is the point)
from loraforge.db.base import Base

metadata = Base.metadata
