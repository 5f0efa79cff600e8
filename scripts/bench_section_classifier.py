"""Section classifier: test-1 accuracy of the committed head and the time it costs the drafter.

    .venv/bin/python scripts/bench_section_classifier.py     # writes its section of docs/benchmarks.md

Timing input: real transcript sentences (the ACI-Bench validation dialogues split into sentences,
speaker prefix kept, as the drafter would pass them), in one call of 100 and one of 200 sentences;
medians of 5 runs after one warm-up, on the machine this runs on.
"""

from __future__ import annotations

import csv
import os
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ambient.nlp.embeddings import get_encoder  # noqa: E402
from ambient.nlp.section_classifier import SectionClassifier  # noqa: E402
from scripts.benchdoc import machine, write_section  # noqa: E402

DATA = REPO.parent / "shared" / "data"
RUNS = 5


def transcript_sentences(path: Path, limit: int) -> list[str]:
    sentences: list[str] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            for line in row["dialogue"].splitlines():
                speaker, _, text = line.partition("] ")
                label = "Doctor" if "doctor" in speaker else "Patient"
                for sentence in re.split(r"(?<=[.?!])\s+", text):
                    if len(sentence.split()) >= 2:
                        sentences.append(f"{label}: {sentence}")
                if len(sentences) >= limit:
                    return sentences[:limit]
    return sentences


def median_seconds(call: object, runs: int = RUNS) -> tuple[float, float]:
    """Median wall time and median CPU time (all threads) of ``call``.

    On a shared machine wall time includes waiting for a core; CPU time is the work itself, so
    CPU time / threads is what the call would take on an idle machine of this kind.
    """
    assert callable(call)
    call()  # warm-up: first-call allocations are not what the drafter pays per note
    walls, cpus = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    test1 = DATA / "mts-dialog" / "MTS-Dialog-TestSet-1-MEDIQA-Chat-2023.csv"
    valid = DATA / "aci-bench" / "valid.csv"
    if not test1.is_file() or not valid.is_file():
        print(f"bench_section_classifier: needs {test1} and {valid} (../shared/data)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    encoder = get_encoder()
    load_s = time.perf_counter() - start
    classifier = SectionClassifier.load(encoder=encoder)
    sentences = transcript_sentences(valid, 200)
    words = statistics.mean(len(s.split()) for s in sentences)
    encode_100 = median_seconds(lambda: encoder.encode(sentences[:100]))
    predict_100 = median_seconds(lambda: classifier.predict(sentences[:100]))
    predict_200 = median_seconds(lambda: classifier.predict(sentences[:200]))

    with test1.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    predicted = [p.label for p in classifier.predict([r["dialogue"] for r in rows])]
    accuracy = sum(p == r["section_header"] for p, r in zip(predicted, rows, strict=True)) / len(rows)
    metrics = classifier.manifest.metrics
    per_class = metrics.get("per_class", {})
    class_rows = "\n".join(
        f"| {label} | {v['support']} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1']:.2f} |"
        for label, v in sorted(per_class.items(), key=lambda kv: -kv[1]["support"])
    )
    markdown = f"""
## Section classifier (`scripts/bench_section_classifier.py`)

Head: softmax regression on frozen all-MiniLM-L6-v2 features (`models/section-classifier/`,
trained by `scripts/train_section_classifier.py` on MTS-Dialog train + validation, C chosen on
validation). Machine: {machine()}; shared with other engineers' jobs while measured, so times are
noisy: medians of {RUNS} runs.

| MTS-Dialog test-1 (200 dialogues, 20 headers) | value | target |
|---|---|---|
| accuracy (reproduced now from the committed head) | {accuracy:.3f} | ≥ 0.80 (not met) |
| macro-F1 over headers present (from head.toml) | {metrics.get("macro_f1", float("nan")):.3f} | |

| torch threads = {encoder.threads} | wall (median) | CPU, all threads (median) | target |
|---|---|---|---|
| encoder load (sha256 checks + weights), once per process | {load_s:.2f} s | | |
| encode 100 transcript sentences (mean {words:.1f} words) | {encode_100[0]:.3f} s | {encode_100[1]:.3f} s | |
| predict 100 sentences (encode + head) | {predict_100[0]:.3f} s | {predict_100[1]:.3f} s | |
| predict 200 sentences (a long visit) | {predict_200[0]:.3f} s | {predict_200[1]:.3f} s | ≤ 1 s per note |

Load average while measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.

Why 0.75 and not 0.80: with the encoder frozen, every head we tried on MTS-Dialog train landed at
0.70–0.76 on test-1 (0.67–0.74 on validation): logistic regression on the whole-dialogue
embedding (0.70–0.725), adding the per-turn mean/max/first turn (0.74–0.755, kept), doctor-only
and patient-only turn means, length features, TF-IDF words beside the embeddings, mean-pooled
hidden layers 1–6, MTS-Dialog note texts as extra examples (the stand-in for ACI-Bench notes),
random sub-window augmentation, a one-layer MLP, a k-NN blend, and attention pooling over token
states (0.67–0.68 after 20 epochs; stopped). CC↔GENHX and ASSESSMENT↔GENHX/PASTMEDICALHX are
most of the errors. Systems at ~0.8 in MEDIQA-Sum 2023 fine-tuned the whole encoder, which a
few-hundred-KB head cannot ship.

Per class on test-1 (from head.toml):

| header | support | precision | recall | F1 |
|---|---|---|---|---|
{class_rows}

LoRA fine-tuning (`scripts/train_section_classifier.py`, `[train]` extra: peft 0.21.2): low-rank
adapters on the attention projections of the top N encoder layers plus a linear head over the
mean-pooled tokens, the frozen lower layers run once and cached, the epoch chosen on validation,
adapters + head saved float16 and merged into the sha256-checked encoder at load (no peft at run
time; the merge is tested against peft's own adapted model; since 2026-12-03 the best adapters so
far are written after every epoch that improves validation, so a stopped run leaves them). Not
shipped: the one LoRA run that finished a schedule on this shared 2-core machine (3 epochs) stayed
below the frozen head, so the 0.80 target is still open.
First attempt (load average 15–48): caching the frozen layers took 20 min and one epoch of 2
adapted layers did not finish in 30 min, so the 2-layer, 128-token, 4-epoch run
was stopped; a 1-layer, 64-token, 2-epoch run (cache 433 s, epochs 428 s and 438 s) reached 0.56
then 0.64 validation accuracy (the frozen head above: 0.72) and 0.655 on test-1 (macro-F1 0.32):
too truncated to compete, and not kept. 2026-12-03, 2 adapted layers, 192 tokens, rank 8, lr 1e-3,
2 threads under `nice -n 19` beside other benchmarks, no GPU lent:

| run | load average | cache | time per epoch | validation accuracy by epoch | test-1 |
|---|---|---|---|---|---|
| `--epochs 1` (timing probe: whole schedule in one epoch) | 2–8 | 137 s | 204 s | 0.54 | not read |
| `--epochs 8` | 8–19 | 340 s | 600 s | 0.56 (epoch 1 of 8) | not read |
| `--epochs 5` | 6–9 | not finished (93 CPU-s in 26 min) | — | — | not read |
| `--epochs 4` (load fell to 2.7) | 3–9 | not finished (6 CPU-s in 5 min) | — | — | not read |
| `--epochs 3` | 2–6 | 255 s | 142, 206, 186 s | 0.57, 0.69, 0.70 | 0.720 (macro-F1 0.487) |

The 8-epoch run was stopped after epoch 1 (seven more 600 s epochs would not have ended before
the session's deadline); the 5-epoch restart got about 5 % of a core at nice 19 (two
other benchmarks held both cores) and was stopped while still caching, as was a 4-epoch try
when the load came back. The 3-epoch run finished (789 s in all): validation 0.70 at the epoch
it chose (3), below the frozen head's 0.72, and test-1 0.720 (macro-F1 0.487; the frozen head:
0.750 and 0.465), so it is not shipped; its training loss was still falling (0.90 → 0.69), so a
longer schedule may do better. Test-1 was read for no other run.
Those epoch times were the busy machine's. On an idle one (2026-12-05, load average under 2)
caching takes 18 s and an epoch of 2 adapted layers 17 s, so the planned run
(`--layers 2 --max-length 192 --epochs 6 --out DIR`) took 128 s in all: validation 0.56, 0.68,
0.71, 0.73, 0.72, 0.74 by epoch, epoch 6 chosen, **test-1 0.730** (macro-F1 0.504), below the
frozen head's 0.750; not shipped. As 100 validation dialogues move one point per dialogue, the
settings were then compared on 400: `--dev-from-train 300 --no-test` holds 300 training dialogues
out (a seeded draw) and chooses on them plus validation; test-1 was not read for any of these.

| on the 400 held-out dialogues (train less 300 used to fit) | best accuracy (epoch) | time per epoch |
|---|---|---|
| frozen head as shipped (same features, C 1 / 2 / 4 / 8 / 16) | 0.755 / 0.76 / 0.765 / 0.755 / 0.755 | |
| LoRA, 2 adapted layers, 192 tokens, 8 epochs | 0.78 (8) | 16 s |
| LoRA, all 6 layers adapted, 256 tokens, 8 epochs | 0.7775 (6) | 60 s |
| LoRA, 2 layers, 384 tokens (24 % of training dialogues pass 192 tokens) | 0.7725 (4) | 28 s |
| 2-layer LoRA and frozen head, mean probabilities (LoRA weight 0.3 / 0.5 / 0.7) | 0.7725 / 0.7725 / 0.78 | |

Adapting every layer, reading twice as much of each dialogue, or averaging the two models
(they agree on 82 % of the dialogues) all stop at 0.77–0.78 on these 400 dialogues, about 2
points above the frozen head, and the one LoRA run scored on test-1 came in below it.
all-MiniLM-L6-v2 is the only sentence encoder in the packages this project may take models from,
and with it the header accuracy stops short of 0.80 whatever part of it is
trained; reaching 0.80 needs a larger or clinical encoder shipped in a package, or a GPU to
try full fine-tuning of one.

The classifier in the drafter (`ambient/notes/section_routing.py`, `AMBIENT_SECTION_ROUTING=1`):
skipped clinician statements moved to exam/plan/results when the frozen head is ≥ 0.6 sure. ACI-Bench
valid (20 notes): ROUGE-1 47.62 → 47.66, ROUGE-2 19.97 → 20.02, ROUGE-Lsum 44.29 → 44.37 (exam
group 24.69 → 23.89, results 23.79 → 24.29): not a measurable gain, so it stays off by default.

Word budgets now live in the templates (`max_words`; same values, hpi 200 and assessment/plan 250):
`ambient eval notes` after the move and ConText rules 1.2.0 gives ACI-Bench valid ROUGE-1 47.62
(R2 19.97, RLsum 44.29) and test1 45.14 (R2 17.38, RLsum 41.37), the same as before; ConText
rules 1.3.0 (2026-12-04) give the same figures on valid and on test1.
"""
    write_section("sections", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
