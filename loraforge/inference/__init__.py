"""Image generation: the pipeline cache within a GPU memory budget, LoRA hot-swap, the generation
queue and the deploy check. The layers and the contracts are in docs/architecture.md.
"""
