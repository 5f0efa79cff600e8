"""Abstractive drafting (``ambient.llm.v1``) next to the clinical drafter on a few ACI-Bench notes.

    python scripts/bench_notes_llm.py --serve-smollm2          # starts llama.cpp with SmolLM2-135M
    python scripts/bench_notes_llm.py --llm-url http://127.0.0.1:8080/v1 --n 5

Same scoring as ``scripts/bench_notes.py`` (ROUGE with ``rouge_score``, no stemming, Lsum) on the
first ``--n`` test1 dialogues, with the ``progress`` template. For each drafter: what the
faithfulness check found before it acted (by kind), what it removed, what was left after (must be
0), and seconds per note. The point with a 135M model is not its ROUGE but the check: the model
invents, the check removes. Writes its own section of docs/benchmarks.md.

Data: ../shared/data/aci-bench; the script stops with a reason without it.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_notes import ACI, rows
from benchdoc import machine, write_section

ALIAS = "smollm2-135m-instruct"


@dataclass
class Row:
    drafter: str
    rouge: dict[str, float]
    seconds: float
    found: Counter[str]
    removed: int
    left: int
    kept: int


@contextmanager
def smollm2_server() -> Iterator[str]:
    """llama.cpp's server on loopback with the packaged SmolLM2 GGUF (sha256-checked first)."""
    from ambient.manifests import manifest_named, verified_files

    (gguf,) = verified_files(manifest_named(ALIAS)).values()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", ALIAS,
                "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read()[-2000:].decode(errors="replace")
                    raise SystemExit(f"llama.cpp server did not start: {tail}")
                try:
                    with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                        json.loads(response.read())
                    break
                except OSError:
                    time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()


def bench(url: str, n: int) -> tuple[list[Row], str]:
    from rouge_score import rouge_scorer

    from ambient.notes.clinical import DRAFTER_ID as CLINICAL_ID
    from ambient.notes.clinical import clinical_nlp, draft_clinical_note
    from ambient.notes.faithfulness import check_note, enforce
    from ambient.notes.llm import LLMOptions, draft_llm_note
    from ambient.notes.render import note_to_text
    from ambient.notes.templates import load_template
    from ambient.transcript.dialogue import detokenize, parse_dialogue
    from ambient.transcript.serialise import transcript_from_turns, transcript_sha256

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=False)
    template = load_template("progress")
    nlp = clinical_nlp()
    nlp.analyse(["warm up"])
    options = LLMOptions(url, timeout_s=300.0)
    out: list[Row] = []
    model = ""
    for row in rows("test1")[:n]:
        turns = parse_dialogue(row["dialogue"])
        transcript = transcript_from_turns(
            [(t.role, detokenize(t.text)) for t in turns],
            source_path=f"aci-bench/test1/{row['encounter_id']}",
            source_sha256="0" * 64,
            encounter_id=row["encounter_id"],
            pipeline_version="bench",
        )
        sha = transcript_sha256(transcript)
        for name in (CLINICAL_ID, "llm"):
            started = time.perf_counter()
            if name == "llm":
                draft = draft_llm_note(transcript, template, sha, options)
                if any("failed" in notice for notice in draft.notices):
                    raise SystemExit(f"the endpoint failed: {draft.notices[-1]}")
                model = draft.provenance.drafter
            else:
                draft = draft_clinical_note(transcript, template, sha)
            report = check_note(draft, transcript, nlp)
            note = enforce(draft, report)
            seconds = time.perf_counter() - started
            scores = scorer.score(row["note"], note_to_text(note))
            out.append(
                Row(
                    drafter=name,
                    rouge={k: 100 * v.fmeasure for k, v in scores.items()},
                    seconds=seconds,
                    found=Counter(i.kind for i in report.issues),
                    removed=report.unsupported,
                    left=check_note(note, transcript, nlp).unsupported,
                    kept=sum(len(s.sentences) for s in note.sections),
                )
            )
    return out, model


def summarise(results: list[Row], model: str, n: int) -> str:
    from ambient.notes.clinical import DRAFTER_ID as CLINICAL_ID

    lines = [
        "## Abstractive drafting on ACI-Bench (`scripts/bench_notes_llm.py`)",
        "",
        f"- Run: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: {machine()}",
        f"- First {n} test1 dialogues, template `progress`; LLM drafter `{model}`.",
        '- ROUGE as in `scripts/bench_notes.py`. "issues": what the faithfulness check flagged in the',
        '  draft, by kind (a statement can have several); "removed": statements it removed; "left":',
        "  statements flagged when the delivered note is checked again (must be 0). Machine shared.",
        "",
        "| drafter | notes | ROUGE-1 | ROUGE-2 | ROUGE-Lsum | sentences kept | issues (kinds) | removed | "
        "left | s per note (median / max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in (CLINICAL_ID, "llm"):
        rs = [r for r in results if r.drafter == name]
        found: Counter[str] = Counter()
        for r in rs:
            found.update(r.found)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(found.items())) or "none"
        r1, r2, rl = (statistics.mean(r.rouge[k] for r in rs) for k in ("rouge1", "rouge2", "rougeLsum"))
        secs = [r.seconds for r in rs]
        label = f"`{CLINICAL_ID}`" if name == CLINICAL_ID else "`ambient.llm.v1` (SmolLM2-135M, llama.cpp)"
        lines.append(
            f"| {label} | {len(rs)} | {r1:.2f} | {r2:.2f} | {rl:.2f} | {sum(r.kept for r in rs)} | "
            f"{sum(found.values())} ({kinds}) | {sum(r.removed for r in rs)} | {sum(r.left for r in rs)} | "
            f"{statistics.median(secs):.2f} / {max(secs):.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--llm-url", help="an OpenAI-compatible endpoint on loopback or https")
    where.add_argument("--serve-smollm2", action="store_true", help="start llama.cpp with SmolLM2-135M")
    parser.add_argument("--n", type=int, default=5, help="test1 dialogues (default 5)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave the doc alone")
    args = parser.parse_args()
    if not ACI.is_dir():
        print(f"bench_notes_llm: {ACI} is missing; it needs ../shared/data/aci-bench", file=sys.stderr)
        return 2
    if args.serve_smollm2:
        with smollm2_server() as url:
            results, model = bench(url, args.n)
    else:
        results, model = bench(args.llm_url, args.n)
    table = summarise(results, model, args.n)
    print(table)
    if not args.no_write:
        print(f"wrote {write_section('notes-llm', table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
