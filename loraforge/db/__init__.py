"""db package (see ../shared/DESIGN.md)."""
