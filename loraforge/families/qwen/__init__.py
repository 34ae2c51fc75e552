"""Qwen-Image (Qwen): the base model QWEN and its preset.

Targets are the joint attention's projections of both streams, as in diffusers'
examples/dreambooth/train_dreambooth_lora_qwen_image.py (`--lora_layers` default); timesteps
are drawn logit-normal as there. The published pipeline is 57.6 GB in bf16 (docs/operate/gpus.md,
"Running on a GPU"); guidance is true CFG against the empty prompt " ".
"""

from __future__ import annotations

from loraforge.families.model_family import ModelFamily

TARGETS = (
    "to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
)
# What follows the caption in QwenImagePipeline.prompt_template_encode.
TEMPLATE_END = "<|im_end|>\n<|im_start|>assistant\n"

FAMILY = ModelFamily(
    key="qwen",
    label="Qwen-Image",
    pipeline_class="QwenImagePipeline",
    presets={
        "QWEN": {
            "family": "qwen", "steps": 1000, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0, "resolution": 1024,
            "batch_size": 1, "target_modules": TARGETS, "timestep_sampling": "logit_normal",
            "max_sequence_length": 512,
        },
    },
    weights_name="QWEN",
    hub_id="Qwen/Qwen-Image",
    licence="Apache-2.0",
    lora_targets=TARGETS,
    published_gb=57.6,
    true_cfg=True,
    default_guidance=4.0,
    default_steps=50,
    lora_tells=("img_mlp", "txt_mlp", "img_mod", "txt_mod"),
    tell_order=1,
    tokenizer_folder="tokenizer",  # Qwen2.5-VL's
    caption_suffix=TEMPLATE_END,
    tiny_name="qwen-image",
    public_loras=(),
    package=__name__,
)
