"""api package (see ../shared/DESIGN.md)."""
