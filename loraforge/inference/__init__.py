"""inference package (see ../shared/DESIGN.md)."""
