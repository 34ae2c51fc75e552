"""jobs package (see ../shared/DESIGN.md)."""
