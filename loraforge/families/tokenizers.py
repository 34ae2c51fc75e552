"""Tokenizers for the tiny demo models, trained locally on a small corpus (no hub).

Real Qwen-Image and FLUX.1-dev ship their tokenizers; the tiny models built by
`loraforge.families.<key>.tiny` need their own of the same classes so that the unmodified diffusers
pipelines run on them. Qwen-Image drops the first 34 tokens of its prompt template, so the
corpus holds the template words and the trained byte-level BPE turns that prefix into exactly
34 tokens (checked by `qwen_template_prefix_length`).
"""

from __future__ import annotations

from transformers import CLIPTokenizer, Qwen2Tokenizer, T5Tokenizer

QWEN_TEMPLATE_PREFIX = (
    "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, "
    "text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n"
)
QWEN_TEMPLATE_DROP = 34  # QwenImagePipeline.prompt_template_encode_start_idx

CORPUS = [
    (
        "Describe the image by detailing the color, shape, size, texture, quantity, text, "
        "spatial relationships of the objects and background:"
    ),
    "system user assistant",
    "Describe this image in one short sentence.",
    "a photo of a cat sitting on a red chair",
    "a painting of a squirrel eating a burger",
    "a dog running in the park with a blue ball",
    "portrait of a woman, studio lighting, high detail",
    "sks style, watercolor landscape with mountains and a lake",
]

QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE uses for raw bytes (GPT-2's table)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def build_qwen2_tokenizer(vocab_size: int = 600) -> Qwen2Tokenizer:
    # Start from bytes only, so Qwen2's own pre-tokenizer regex applies, then learn merges.
    base = Qwen2Tokenizer(vocab={ch: i for i, ch in enumerate(_byte_alphabet())}, merges=[])
    tok: Qwen2Tokenizer = base.train_new_from_iterator(CORPUS * 10, vocab_size=vocab_size,
                                                       new_special_tokens=QWEN_SPECIALS)
    tok.model_max_length = 32768
    return tok


def qwen_template_prefix_length(tok: Qwen2Tokenizer) -> int:
    return len(tok(QWEN_TEMPLATE_PREFIX).input_ids)


def build_clip_tokenizer() -> CLIPTokenizer:
    chars = _byte_alphabet()
    vocab = {ch: i for i, ch in enumerate(chars)}
    for ch in chars:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    base = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    tok: CLIPTokenizer = base.train_new_from_iterator(CORPUS * 10, vocab_size=900)
    tok.model_max_length = 77
    return tok


def build_t5_tokenizer() -> T5Tokenizer:
    # A unigram vocab with T5's special ids (pad=0, eos=1, unk=2), whole corpus words, then chars.
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    seen = {p for p, _ in pieces}
    words = sorted({w for line in CORPUS for w in line.replace(",", " ,").replace(":", " :").split()})
    for word in words:
        piece = "\u2581" + word
        if piece not in seen:
            pieces.append((piece, -5.0))
            seen.add(piece)
    alphabet = {c for line in CORPUS for c in line}
    alphabet |= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'-")
    for ch in sorted(alphabet - {" "}):
        if ch not in seen:
            pieces.append((ch, -10.0))
            seen.add(ch)
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)
