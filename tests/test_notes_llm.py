"""Abstractive drafting (ambient.notes.llm): citation parsing, URL safety, fallback, and the
whole path against a real llama.cpp server running SmolLM2-135M-Instruct on loopback.

The small model writes poor notes: invented facts, sentences without citations. These tests
check that the faithfulness check after every draft removes (or marks) what the transcript does
not support, and that a dead endpoint never costs the encounter.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ambient.cli.main import main
from ambient.config import Settings, load_settings, resolve_paths
from ambient.errors import ConfigError
from ambient.manifests import manifest_named, verified_files
from ambient.notes.clinical import DRAFTER_ID as CLINICAL_ID
from ambient.notes.clinical import clinical_nlp, read_visit
from ambient.notes.faithfulness import check_note, enforce
from ambient.notes.llm import (
    DRAFTER_ID,
    PROMPT_SHA256,
    LLMOptions,
    ParsedSentence,
    api_base,
    build_prompt,
    draft_llm_note,
    parse_answer,
    to_note_sentences,
)
from ambient.pipeline import Pipeline
from ambient.transcript.serialise import transcript_sha256
from ambient.types import NoteDraft, NoteSection, Provenance, TemplateRef, Transcript

VISIT = """\
[doctor] Good morning, what brings you in today?
[patient] I have had pain in my left knee for three weeks.
[patient] It hurts more when I climb stairs and it is worse at night.
[doctor] Any fever or chills?
[patient] No.
[doctor] Are you taking anything for it?
[patient] I take ibuprofen 400 milligrams twice a day.
[patient] I also take lisinopril 10 milligrams once a day for my blood pressure.
[doctor] Any allergies to medications?
[patient] I am allergic to penicillin, it gives me a rash.
[doctor] Your blood pressure today is 138 over 84.
[doctor] On exam there is swelling of the left knee and tenderness on the medial side.
[doctor] The x-ray showed mild osteoarthritis of the left knee.
[doctor] I think this is osteoarthritis of the left knee.
[doctor] I will refer you to physical therapy and you can continue the ibuprofen.
[doctor] Let's follow up in four weeks.
"""
MODEL_ALIAS = "smollm2-135m-instruct"
SLOW_S = 300.0  # per request: a CPU model on a shared 2-core machine is slow, not down
DRAFTER = f"{DRAFTER_ID} (model={MODEL_ALIAS}, prompt sha256={PROMPT_SHA256})"
_REMOVED = re.compile(r"(\d+) statement\(s\) removed")


def pipeline_for(**notes: object) -> Pipeline:
    paths = resolve_paths()
    settings: Settings = load_settings(paths)
    return Pipeline(replace(settings, notes=replace(settings.notes, **notes)), paths)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def visit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Transcript]:
    folder = tmp_path_factory.mktemp("visit")
    path = folder / "knee.txt"
    path.write_text(VISIT, encoding="utf-8")
    # Module scope runs before the per-test AMBIENT_HOME: use defaults, not the developer's config.
    pipeline = Pipeline(Settings(), resolve_paths({"AMBIENT_HOME": str(folder)}))
    return path, pipeline.load_dialogue(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- without a server -------------------------------------------------------------------------


def test_parse_answer_attaches_citations_to_the_sentence_they_follow() -> None:
    answer = """**Subjective:**
- The patient reports left knee pain for 3 weeks. [S2] She takes ibuprofen 400 mg twice a day [S7].
- Denies fever (S4, S5). Also reports nausea.
[S10] Allergic to penicillin with rash.
The pain is worse on stairs [S3] and at night [S2-S3].
Blood pressure 150/90 [S99]
Swelling of the left knee [S12, 13; S14 and S15]. See reference [1].
NONE
"""
    assert parse_answer(answer, "Subjective") == [
        ParsedSentence("The patient reports left knee pain for 3 weeks.", (2,)),
        ParsedSentence("She takes ibuprofen 400 mg twice a day.", (7,)),
        ParsedSentence("Denies fever.", (4, 5)),
        ParsedSentence("Also reports nausea.", ()),
        ParsedSentence("Allergic to penicillin with rash.", (10,)),
        ParsedSentence("The pain is worse on stairs and at night.", (3, 2, 3)),
        ParsedSentence("Blood pressure 150/90", (99,)),
        ParsedSentence("Swelling of the left knee.", (12, 13, 14, 15)),
        ParsedSentence("See reference [1].", ()),
    ]


def test_parse_answer_without_citations_or_with_none() -> None:
    assert parse_answer("NONE") == []
    assert parse_answer("Plan:\n1. Physical therapy. 2. Follow up.", "Plan") == [
        ParsedSentence("Physical therapy.", ()),
        ParsedSentence("Follow up.", ()),
    ]


def test_citations_become_evidence_and_the_check_removes_what_they_do_not_support(
    visit: tuple[Path, Transcript],
) -> None:
    _, transcript = visit
    reading = read_visit(transcript)
    template = pipeline_for().template
    subjective = next(s for s in template.sections if s.key == "subjective")
    prompt = build_prompt(reading, template, subjective)
    ids = {i for i, r in enumerate(reading.reads, 1) if i in prompt.ids}
    knee = next(i for i in ids if "left knee" in reading.reads[i - 1].sentence.text)
    meds = next(i for i in ids if "ibuprofen" in reading.reads[i - 1].sentence.text)
    assert f"[S{meds}] (patient) I take ibuprofen" in prompt.messages[1]["content"]
    answer = (
        f"The patient reports left knee pain for 3 weeks. [S{knee}]\n"
        f"She takes ibuprofen 400 mg twice a day. [S{meds}]\n"
        f"She takes ibuprofen 800 mg three times a day. [S{meds}]\n"  # invented dose
        f"She also takes metformin. [S{meds}]\n"  # invented drug
        f"The right knee is painful. [S{knee}]\n"  # wrong side
        "The patient smokes.\n"  # no citation
        f"The pain started after a fall. [S{len(reading.reads) + 40}]\n"  # id that does not exist
    )
    sentences = to_note_sentences(parse_answer(answer), reading, prompt.ids)
    assert [bool(s.evidence) for s in sentences] == [True, True, True, True, True, False, False]
    assert sentences[1].evidence == reading.reads[meds - 1].sentence.evidence
    assert sentences[1].speaker == "patient"
    note = NoteDraft(
        "enc-1",
        "SOAP note",
        (NoteSection("subjective", "Subjective", tuple(sentences)),),
        Provenance("0", DRAFTER_ID, TemplateRef("t", "1", "0"), None, "0", "0", "now"),
    )
    report = check_note(note, transcript, clinical_nlp())
    kinds = {(i.index, i.kind) for i in report.issues}
    expected = {(2, "number"), (3, "medication"), (4, "laterality"), (5, "no_evidence"), (6, "no_evidence")}
    assert expected <= kinds
    checked = enforce(note, report)
    assert [s.text for s in checked.sections[0].sentences] == [
        "The patient reports left knee pain for 3 weeks.",
        "She takes ibuprofen 400 mg twice a day.",
    ]
    assert "5 statement(s) removed" in checked.notices[-1]


def test_endpoint_urls_that_could_leak_phi_are_refused() -> None:
    assert api_base("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1"
    assert api_base("http://localhost:11434/v1/") == "http://localhost:11434/v1"
    assert api_base("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert api_base("https://llm.hospital.example/api/v1") == "https://llm.hospital.example/api/v1"
    for url, message in [
        ("http://10.0.0.5:8080/v1", "plain http is only allowed to a loopback"),
        ("https://user:secret@llm.hospital.example/v1", "no credentials in the URL"),
        ("ftp://127.0.0.1/v1", "expected http(s)"),
        ("127.0.0.1:8080", "expected http(s)"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            api_base(url)
    assert "secret" not in repr(LLMOptions("http://127.0.0.1:1", api_key="secret"))


def test_endpoint_down_falls_back_to_the_clinical_drafter(visit: tuple[Path, Transcript]) -> None:
    _, transcript = visit
    port = free_port()  # nothing listens here: connection refused, retried, then fallback
    started = time.perf_counter()
    note = pipeline_for(llm_url=f"http://127.0.0.1:{port}/v1", llm_api_key="s3cret").draft(transcript)
    assert time.perf_counter() - started < 30
    assert note.provenance.drafter.startswith(CLINICAL_ID)
    fallback = [n for n in note.notices if n.startswith(f"Abstractive drafting ({DRAFTER_ID}) failed")]
    assert len(fallback) == 1
    assert f"cannot reach http://127.0.0.1:{port}/v1/models" in fallback[0]
    assert "s3cret" not in fallback[0]
    assert f"drafted by {CLINICAL_ID} instead" in fallback[0]
    assert any("ibuprofen" in s.text.lower() for sec in note.sections for s in sec.sentences)


def test_an_unsafe_url_is_a_config_error_not_a_fallback(visit: tuple[Path, Transcript]) -> None:
    _, transcript = visit
    with pytest.raises(ConfigError):
        pipeline_for(llm_url="http://192.0.2.10:8080/v1").draft(transcript)


# -- against a real llama.cpp server ----------------------------------------------------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server with the packaged SmolLM2 GGUF, on loopback."""
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed (extra 'llm')")
    manifest = manifest_named(MODEL_ALIAS)
    (gguf,) = verified_files(manifest).values()  # sha256 checked before the server may load it
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
                "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama.cpp server exited {server.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                    if json.loads(response.read())["data"][0]["id"] == MODEL_ALIAS:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server did not answer in 120 s: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _sentences(note: NoteDraft) -> list[str]:
    return [s.text for section in note.sections for s in section.sentences]


@pytest.mark.llm
def test_real_server_note_through_the_pipeline(llama_server: str, visit: tuple[Path, Transcript]) -> None:
    _, transcript = visit
    note = pipeline_for(llm_url=llama_server, llm_timeout_s=SLOW_S).draft(transcript)
    assert note.provenance.drafter == DRAFTER
    assert [s.key for s in note.sections] == ["subjective", "objective", "assessment", "plan"]
    assert _sentences(note), "nothing survived the check: the plumbing delivered an empty note"
    for section in note.sections:
        for sentence in section.sentences:
            assert sentence.evidence, sentence.text
    # What was delivered is supported, re-checked from scratch: no unsupported drug, dose or number.
    assert check_note(note, transcript, clinical_nlp()).issues == ()
    assert not any("failed" in n for n in note.notices)


@pytest.mark.llm
def test_real_server_poor_statements_are_removed(llama_server: str, visit: tuple[Path, Transcript]) -> None:
    _, transcript = visit
    options = LLMOptions(llama_server, timeout_s=SLOW_S)
    raw = draft_llm_note(transcript, pipeline_for().template, transcript_sha256(transcript), options)
    report = check_note(raw, transcript, clinical_nlp())
    assert report.unsupported >= 1, "the 135M model wrote nothing unsupported: the check went untested"
    checked = enforce(raw, report)
    assert f"{report.unsupported} statement(s) removed" in checked.notices[-1]
    assert check_note(checked, transcript, clinical_nlp()).issues == ()
    assert len(_sentences(checked)) == len(_sentences(raw)) - report.unsupported

    delivered = pipeline_for(llm_url=llama_server, llm_timeout_s=SLOW_S).draft(transcript)
    removed = [int(m.group(1)) for n in delivered.notices if (m := _REMOVED.search(n))]
    assert len(removed) == 1 and removed[0] >= 1
    recheck = check_note(delivered, transcript, clinical_nlp())
    assert not [i for i in recheck.issues if i.kind in ("medication", "number", "no_evidence")]
    assert recheck.issues == ()


@pytest.mark.llm
def test_real_server_mark_policy_marks_instead(llama_server: str, visit: tuple[Path, Transcript]) -> None:
    _, transcript = visit
    note = pipeline_for(llm_url=llama_server, llm_timeout_s=SLOW_S, unsupported="mark").draft(transcript)
    marked = [t for t in _sentences(note) if "[UNVERIFIED: " in t]
    assert marked
    assert any(f"{len(marked)} statement(s) marked UNVERIFIED" in n for n in note.notices)


PLAN_ONLY = """\
id = "test.plan_only"
name = "plan-only"
version = "1.0.0"
title = "Plan"

[[sections]]
key = "plan"
title = "Plan"
content = ["plan"]
"""


@pytest.mark.llm
def test_cli_note_with_llm_url(
    llama_server: str,
    visit: tuple[Path, Transcript],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = visit
    monkeypatch.setenv("AMBIENT_NOTES_LLM_TIMEOUT_S", str(SLOW_S))
    template = tmp_path / "plan_only.toml"  # one section: one request to the slow CPU model
    template.write_text(PLAN_ONLY, encoding="utf-8")
    code = main(["note", str(path), "--llm-url", llama_server, "--template", str(template), "--format=json"])
    out = capsys.readouterr().out
    assert code == 0
    note = json.loads(out)
    assert note["provenance"]["drafter"] == DRAFTER
    assert [s["key"] for s in note["sections"]] == ["plan"]
