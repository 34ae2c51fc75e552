"""webhooks package (see ../shared/DESIGN.md)."""
