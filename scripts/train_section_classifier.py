"""Train the transcript section classifier head on MTS-Dialog and write it under models/.

    .venv/bin/python scripts/train_section_classifier.py [--data ../shared/data] [--out DIR]

Data (read in place from ../shared/data, never copied): MTS-Dialog training set (fit), validation
set (choose C), then a final fit on training + validation; test-1 is used once, for the figure in
head.toml and docs/benchmarks.md. The sha256 of every data file read is recorded in head.toml.

ACI-Bench train is read and hashed but adds no examples: its notes are free text, not dialogue
snippets; MTS-Dialog's own note texts (section_text) used as extra examples with the same header,
the closest thing ACI-Bench notes could give, lowered validation and test-1 accuracy in our trials
(docs/benchmarks.md), so the head is trained on dialogue snippets only.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ambient.hashing import sha256_file  # noqa: E402
from ambient.nlp.embeddings import get_encoder  # noqa: E402
from ambient.nlp.section_classifier import FEATURE_RECIPE, featurise, fit_softmax_regression, softmax  # noqa: E402

MTS = {
    "train": "mts-dialog/MTS-Dialog-TrainingSet.csv",
    "validation": "mts-dialog/MTS-Dialog-ValidationSet.csv",
    "test1": "mts-dialog/MTS-Dialog-TestSet-1-MEDIQA-Chat-2023.csv",
}
ACI_TRAIN = "aci-bench/train.csv"
C_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def read_split(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["dialogue"] for r in rows], [r["section_header"] for r in rows]


def scores(gold: list[str], predicted: list[str], labels: list[str]) -> dict[str, object]:
    """Accuracy, macro-F1 over the labels present in gold or predicted, and per-class P/R/F1."""
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        n_pred = sum(p == label for p in predicted)
        n_gold = sum(g == label for g in gold)
        if n_pred == 0 and n_gold == 0:
            continue
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_class[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": n_gold,
        }
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    return {"accuracy": round(accuracy, 4), "macro_f1": round(float(np.mean(f1s)), 4), "per_class": per_class}


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "section-classifier")
    args = parser.parse_args(argv)

    paths = {name: args.data / rel for name, rel in {**MTS, "aci_train": ACI_TRAIN}.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        print(
            "train_section_classifier: the training data is not there: " + ", ".join(missing) + ". "
            "It lives in ../shared/data beside the repository (see its README); pass --data DIR.",
            file=sys.stderr,
        )
        return 2
    hashes = {name: sha256_file(p) for name, p in paths.items()}

    started = time.perf_counter()
    encoder = get_encoder()
    texts, gold = {}, {}
    features = {}
    for name in MTS:
        texts[name], gold[name] = read_split(paths[name])
        features[name] = featurise(encoder, texts[name])
        print(f"{name}: {len(texts[name])} dialogues featurised", flush=True)
    labels = sorted(set(gold["train"]) | set(gold["validation"]))
    index = {label: i for i, label in enumerate(labels)}

    def targets(name: str) -> np.ndarray:
        return np.array([index[label] for label in gold[name]], dtype=np.int64)

    def predict(weight: np.ndarray, bias: np.ndarray, name: str) -> list[str]:
        probabilities = softmax(features[name] @ weight + bias)
        return [labels[i] for i in probabilities.argmax(axis=1)]

    selection = {}
    for c in C_GRID:
        weight, bias = fit_softmax_regression(features["train"], targets("train"), len(labels), c)
        selection[c] = scores(gold["validation"], predict(weight, bias, "validation"), labels)["accuracy"]
        print(f"C={c}: validation accuracy {selection[c]}", flush=True)
    best_c = max(C_GRID, key=lambda c: (selection[c], -c))  # ties go to the stronger penalty

    train_val = np.vstack([features["train"], features["validation"]])
    train_val_targets = np.concatenate([targets("train"), targets("validation")])
    weight, bias = fit_softmax_regression(train_val, train_val_targets, len(labels), best_c)
    test = scores(gold["test1"], predict(weight, bias, "test1"), labels)
    print(f"C={best_c}: test-1 accuracy {test['accuracy']}, macro-F1 {test['macro_f1']}")

    args.out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, weight=weight.astype(np.float32), bias=bias.astype(np.float32))
    head_bytes = buffer.getvalue()
    (args.out / "head.npz").write_bytes(head_bytes)
    write_manifest(
        args.out / "head.toml",
        head_bytes,
        labels,
        encoder,
        hashes,
        best_c,
        selection,
        test,
        {name: len(texts[name]) for name in MTS},
        time.perf_counter() - started,
    )
    print(f"wrote {args.out / 'head.npz'} ({len(head_bytes)} bytes) and head.toml")
    return 0


def write_manifest(
    path: Path,
    head: bytes,
    labels: list[str],
    encoder: object,
    hashes: dict[str, str],
    c: float,
    selection: dict[float, object],
    test: dict[str, object],
    sizes: dict[str, int],
    seconds: float,
) -> None:
    ref = encoder.ref  # type: ignore[attr-defined]
    per_class = test["per_class"]
    assert isinstance(per_class, dict)
    lines = [
        "# Section classifier head, written by scripts/train_section_classifier.py: do not edit by hand.",
        "# ambient checks head.npz against head.sha256 and the encoder against embedding_model.sha256.",
        'name = "mts-dialog-sections"',
        f"trained = {toml_value(dt.date.today().isoformat())}",
        f"labels = {toml_value(labels)}",
        "",
        "[head]",
        'file = "head.npz"',
        f'sha256 = "{hashlib.sha256(head).hexdigest()}"',
        'kind = "softmax-regression"',
        "",
        "[features]",
        f"recipe = {toml_value(FEATURE_RECIPE)}",
        f"dimension = {4 * encoder.dimension}",  # type: ignore[attr-defined]
        "",
        "[embedding_model]",
        f"name = {toml_value(ref.name)}",
        f"version = {toml_value(ref.version)}",
        f'sha256 = "{ref.sha256}"',
        "",
        "[hyperparameters]",
        'penalty = "l2"',
        f"C = {c}",
        f"C_grid = {toml_value(list(selection))}",
        f"validation_accuracy_by_C = {toml_value(list(selection.values()))}",
        'final_fit = "train + validation"',
        "",
        "[training_data]",
        f"examples = {toml_value(sizes['train'] + sizes['validation'])}",
        'aci_bench_train = "hashed, adds no examples (see the script docstring)"',
    ]
    lines += [f'{name}_sha256 = "{digest}"' for name, digest in hashes.items()]
    lines += [
        "",
        "[metrics]",
        'data = "MTS-Dialog test-1 (MEDIQA-Chat 2023), 200 dialogues"',
        f"accuracy = {test['accuracy']}",
        f"macro_f1 = {test['macro_f1']}",
        f"train_seconds = {round(seconds, 1)}",
        "",
    ]
    for label, row in per_class.items():
        lines.append(f"[metrics.per_class.{toml_value(label)}]")
        lines += [f"{key} = {value}" for key, value in row.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
