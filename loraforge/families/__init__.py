"""Model families: each trainable pipeline family is one folder here, listed in `registry.FAMILIES`.

A folder (flux/, qwen/) holds everything that is that family's own: its names and presets,
caching and prediction, the published architecture, the tiny test model, the LoRA targets and
the export layouts. The rest of loraforge reads `loraforge.families.registry`; this package
imports nothing of loraforge but `config` and `errors`, so training may import it and it never
imports training (see docs/adding-a-family.md).
"""
