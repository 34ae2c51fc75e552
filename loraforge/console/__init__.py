"""console package (see ../shared/DESIGN.md)."""
