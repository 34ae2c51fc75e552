"""FLUX.1-dev (black-forest-labs): the base models FLUX and FAST_FLUX, and their presets.

Targets are the attention and MLP projections of both streams, as in diffusers'
examples/dreambooth/train_dreambooth_lora_flux.py (`--lora_layers` default) plus the MLPs.
FLUX trains as the reference script does (shifted timesteps, shift 3.0, guidance input 1.0);
FAST_FLUX is tuned for wall time: 512 px buckets (4x fewer tokens), short text (128 tokens,
captions are short), everything cached, and a larger learning rate so fewer steps reach the
same place. The published pipeline is 33.5 GB in bf16 (docs/operate/gpus.md).
"""

from __future__ import annotations

from loraforge.families.model_family import ModelFamily

TARGETS = (
    "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0",  # image stream (+ single blocks' q/k/v)
    "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out",  # text stream
    "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2",
)

FAMILY = ModelFamily(
    key="flux",
    label="FLUX.1-dev",
    pipeline_class="FluxPipeline",
    presets={
        "FLUX": {
            "family": "flux", "steps": 1000, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0, "resolution": 1024,
            "batch_size": 1, "target_modules": TARGETS, "timestep_sampling": "shifted", "shift": 3.0,
            "guidance": 1.0, "max_sequence_length": 512,
        },
        "FAST_FLUX": {
            "family": "flux", "steps": 500, "learning_rate": 4e-4, "rank": 16, "alpha": 16.0, "resolution": 512,
            "batch_size": 1, "target_modules": TARGETS, "timestep_sampling": "logit_normal",
            "guidance": 1.0, "max_sequence_length": 128,
        },
    },
    weights_name="FLUX",
    hub_id="black-forest-labs/FLUX.1-dev",
    licence="FLUX.1 [dev] Non-Commercial License (gated: accept it on the hub page)",
    lora_targets=TARGETS,
    published_gb=33.5,
    true_cfg=False,  # guidance-distilled: the guidance value is a transformer input
    default_guidance=3.5,
    default_steps=28,
    # BFL's names (ComfyUI/kohya files) and diffusers' single-stream blocks.
    lora_tells=("single_transformer_blocks", "single_blocks", "double_blocks"),
    tell_order=0,  # BFL double blocks also have img_mlp/txt_mod, which in diffusers only Qwen-Image has
    tokenizer_folder="tokenizer_2",  # T5: the long prompt
    caption_suffix="",
    tiny_name="flux-dev",
    public_loras=("FAST_FLUX",),  # Segmind serves FAST_FLUX weights by a plain link
    package=__name__,
)
