"""`loraforge generate`: one image from a base model and an optional LoRA file, with the service's runner.

The flags are the fields of `POST /v1/{slug}` and go through the same validation, so an image made
here matches the service's for the same seed. A LoRA whose metadata or tensor names tell another
base model is refused before any model loads ("this LoRA was trained for QWEN, not FLUX"). The output format follows the file extension
(.png, .jpg, .jpeg) and the file is written atomically: a failed run leaves no partial image.
"""

from __future__ import annotations

import argparse
import os
import uuid
from pathlib import Path

from loraforge.errors import ValidationError
from loraforge.families.registry import base_models_in_words


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("generate", help="generate an image with a base model and optional LoRA")
    parser.add_argument("--base-model", required=True, help=base_models_in_words())
    parser.add_argument("--model", help="hub id or local pipeline folder (default: LORAFORGE_MODEL_*, else tiny)")
    parser.add_argument("--lora", type=Path, help="a LoRA .safetensors file trained for this base model")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--negative-prompt")
    parser.add_argument("--out", type=Path, required=True, help="output image: .png, .jpg or .jpeg")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--steps", type=int, help="denoising steps (default: 28 FLUX, 50 QWEN)")
    parser.add_argument("--guidance-scale", type=float)
    parser.add_argument("--seed", type=int, help="same seed, same image (default: random, printed)")
    parser.add_argument("--lora-strength", type=float, default=1.0, help="0 gives the base model's image")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loraforge.config import load_settings
    from loraforge.inference.adapters import check_trained_for
    from loraforge.inference.encoding import EXTENSIONS, encode_image
    from loraforge.inference.request import parse_request
    from loraforge.training.loading import family_of

    image_format = EXTENSIONS.get(args.out.suffix.lower())
    if image_format is None:
        raise ValidationError(f"--out must end in .png, .jpg or .jpeg (got {args.out.name!r})")
    if args.lora is not None and not args.lora.is_file():
        raise ValidationError(f"--lora: no such file {args.lora}")
    family_of(args.base_model)  # names --base-model before the LoRA is compared with it
    if args.lora is not None:
        check_trained_for(args.lora, args.base_model)  # before minutes of loading a base model it cannot fit
    settings = load_settings()
    fields = {
        "prompt": args.prompt,
        "negative_prompt": args.negative_prompt,
        "width": args.width,
        "height": args.height,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance_scale,
        "seed": args.seed,
        "lora_strength": args.lora_strength,
        "image_format": image_format,
    }
    request = parse_request({k: v for k, v in fields.items() if v is not None}, settings).with_seed()
    from loraforge.inference.runner import InferenceRunner  # torch: only once the flags are valid

    runner = InferenceRunner(settings)
    image = runner.generate(request, base_model=args.base_model, lora_path=args.lora, model_ref=args.model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.{uuid.uuid4().hex}.part")
    try:
        tmp.write_bytes(encode_image(image, image_format))
        os.replace(tmp, args.out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"{args.out}\t{image.width}x{image.height}\tseed {request.seed}")
    return 0
