"""scripts/peer_weights.py: the peers' model files are our packaged tiny.en, renamed, not retrained.

The script runs as a user would (a subprocess writing into a temporary folder). The openai-whisper
checkpoint must fill every parameter of openai-whisper's own model with the right shape, and its
weights must be CTranslate2's exactly (the fused q|k|v projection split back); the ggml file must
start with whisper.cpp's header and the same dimensions. Needs the ``[peers]`` extra.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_converted_checkpoints_hold_our_weights(tmp_path: Path) -> None:
    whisper = pytest.importorskip("whisper", reason="openai-whisper is in the [peers] extra")
    torch = pytest.importorskip("torch")
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "peer_weights.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    record = json.loads(done.stdout)
    assert record["dims"] == {
        "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
        "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4,
    }  # fmt: skip

    checkpoint = torch.load(record["paths"]["openai-whisper"], map_location="cpu")
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**checkpoint["dims"]))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in checkpoint["model_state_dict"].items()}
    assert got == expected
    model.load_state_dict(checkpoint["model_state_dict"])  # strict: nothing missing, nothing extra

    spec = importlib.util.spec_from_file_location("peer_weights", REPO / "scripts" / "peer_weights.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    ct2 = script.read_ct2(Path(record["ct2_folder"]) / "model.bin")
    fused = ct2["decoder/layer_2/self_attention/linear_0/weight"]
    state = checkpoint["model_state_dict"]
    value = state["decoder.blocks.2.attn.value.weight"].numpy()
    query = state["decoder.blocks.2.attn.query.weight"].numpy()
    assert np.array_equal(value, fused[768:]) and np.array_equal(query, fused[:384])
    assert not np.array_equal(value, fused[384:768])  # key and value really are different parts
    assert np.array_equal(state["decoder.token_embedding.weight"].numpy(), ct2["decoder/embeddings/weight"])

    header = Path(record["paths"]["whisper.cpp"]).read_bytes()[: 4 * 12]
    magic, *hparams = struct.unpack("12i", header)
    assert magic == 0x67676D6C
    assert hparams == [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]
