"""datasets package (see ../shared/DESIGN.md)."""
