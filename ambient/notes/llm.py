"""Optional abstractive drafting through an OpenAI-compatible chat endpoint the site runs.

Off by default (``[notes] llm_url = ""``). When a site points ``llm_url`` at its own llama.cpp
server, vLLM or Ollama, ``ambient.llm.v1`` asks the model to write each template section from the
visit as :func:`ambient.notes.clinical.read_visit` understood it: numbered transcript sentences
(``[S12] text``) and the findings in them. The model must cite the sentence ids after every
sentence it writes; the cited sentences' evidence spans become the note sentence's evidence. A
sentence without a valid citation gets no evidence, so the faithfulness check that follows every
draft (``Pipeline.draft``) removes it, and every cited sentence is checked against the words it
cites: a small model's invented drug, dose or side does not reach the clinician.

**The prompt holds PHI** (the visit's words). The endpoint must run inside the site, under the
site's control: plain ``http`` is accepted only for loopback addresses, anything else must be
``https`` with certificate verification (never turned off here). Environment proxies are ignored
and redirects are refused, so the text goes to the configured host and nowhere else. The optional
bearer key (``[notes] llm_api_key`` or ``$AMBIENT_NOTES_LLM_API_KEY``) is sent only in the
``Authorization`` header and never logged or put in an error message. Logs carry ids, counts and
timings only.

If the endpoint fails (down, timing out, answering garbage), the encounter is not lost: the
clinical drafter writes the note instead and the note says so in a notice.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ambient.config import NotesSettings
from ambient.errors import AmbientError, ConfigError
from ambient.logs import event_log
from ambient.nlp.findings import Finding
from ambient.notes.clinical import (
    DICTATION,
    EXAM,
    HPI,
    PLAN,
    RESULTS,
    SKIP,
    Read,
    Reading,
    draft_clinical_note,
    read_visit,
    render_icd10,
)
from ambient.notes.drafter import assemble_note, draft_note
from ambient.notes.templates import SectionSpec, Template
from ambient.types import EvidenceSpan, NoteDraft, NoteSection, NoteSentence, Transcript

DRAFTER_ID = "ambient.llm.v1"
log = event_log("llm")  # ids and counts only (ambient/logs.py)

# The instructions every section prompt starts with. Its sha256 is in every note's provenance,
# so changing a word here is a new prompt version.
SYSTEM_PROMPT = """\
You are a medical scribe writing one section of a clinical note from a doctor-patient visit.
Use only facts stated in the numbered transcript sentences. Never add a drug, dose, number, body
side or diagnosis that the sentences do not state. Keep negations ("denies chest pain").
Write short sentences in a clinician's register, third person ("The patient reports ...").
After every sentence, cite the numbers of the transcript sentences that support it in square
brackets, for example: The patient reports chest pain for 2 days. [S4]
If nothing in the transcript belongs in this section, answer NONE."""

USER_PROMPT = """\
Note: {note_title}
Section to write: {section_title}{section_hint}

Transcript sentences:
{sentences}

Findings (from the sentences above):
{findings}

Write the {section_title} section now, with the supporting sentence numbers in brackets after
every sentence."""

PROMPT_SHA256 = hashlib.sha256(f"{SYSTEM_PROMPT}\n\n{USER_PROMPT}".encode()).hexdigest()

# What a section holds → which transcript sentences the model sees for it.
_KIND_ROLES: dict[str, frozenset[str]] = {
    "chief_complaint": frozenset({HPI, DICTATION}),
    "hpi": frozenset({HPI, DICTATION}),
    "exam": frozenset({EXAM}),
    "results": frozenset({RESULTS}),
    "assessment_plan": frozenset({PLAN, DICTATION}),
    "assessment": frozenset({PLAN, DICTATION}),
    "plan": frozenset({PLAN}),
    "instructions": frozenset({PLAN}),
}
_KIND_CATEGORIES: dict[str, frozenset[str]] = {
    "ros": frozenset({"SYMPTOM"}),
    "medications": frozenset({"MEDICATION"}),
    "allergies": frozenset({"ALLERGY"}),
    "history": frozenset({"PROBLEM", "PROCEDURE"}),
    "family_history": frozenset({"PROBLEM", "PROCEDURE"}),
    "social_history": frozenset({"SOCIAL"}),
    "vitals": frozenset({"VITAL"}),
    "results": frozenset({"TEST"}),
    "assessment": frozenset({"PROBLEM"}),
    "assessment_plan": frozenset({"PROBLEM", "ORDER"}),
    "plan": frozenset({"ORDER"}),
    "instructions": frozenset({"ORDER"}),
}
_HISTORY_KINDS = frozenset({"ros", "medications", "allergies", "history", "family_history", "social_history"})
_KIND_HINTS: dict[str, str] = {
    "chief_complaint": "the chief complaint",
    "hpi": "history of present illness (onset, duration, severity)",
    "ros": "review of systems (symptoms endorsed and denied)",
    "medications": "current medications with doses",
    "allergies": "allergies with reactions",
    "history": "past medical and surgical history",
    "family_history": "family history",
    "social_history": "social history",
    "vitals": "vital signs",
    "exam": "physical examination",
    "results": "results of tests",
    "assessment_plan": "assessment and plan per problem",
    "assessment": "assessment per problem",
    "plan": "plan: orders, prescriptions, referrals, follow-up",
    "instructions": "instructions to the patient in plain language",
}
_MAX_EVIDENCE_CHARS = 7000  # keeps one section's prompt well inside a 4096-token context
_RETRY_STATUS = frozenset({502, 503, 504})


class LLMError(AmbientError):
    """The chat endpoint could not give an answer (unreachable, timed out, malformed reply)."""

    code = "AMB-E600"


# -- endpoint ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMOptions:
    """How to reach the site's chat endpoint; built from ``[notes]`` settings."""

    url: str  # base URL of the OpenAI-compatible API, with or without the trailing /v1
    model: str = ""  # empty: the first model the endpoint lists
    timeout_s: float = 60.0
    api_key: str = field(default="", repr=False)
    retries: int = 2  # extra attempts after a connection error or a 502/503/504
    max_tokens: int = 320
    temperature: float = 0.0

    @classmethod
    def from_settings(cls, notes: NotesSettings) -> LLMOptions:
        return cls(
            url=notes.llm_url, model=notes.llm_model, timeout_s=notes.llm_timeout_s, api_key=notes.llm_api_key
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_base(url: str) -> str:
    """The ``.../v1`` base of an endpoint URL, after refusing any URL that could leak PHI.

    ``http`` only to loopback (the traffic never leaves the machine); ``https`` to any host the
    site configured. No credentials in the URL (they would end up in error messages and logs).
    """
    parts = urllib.parse.urlsplit(url.strip())
    where = f"notes.llm_url {url!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: expected http(s)://host:port[/v1] of an OpenAI-compatible server")
    if parts.username or parts.password:
        raise ConfigError(f"{where}: put no credentials in the URL; set notes.llm_api_key instead")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"{where}: the prompt holds PHI, so plain http is only allowed to a loopback address; "
            "use https to the site's server (certificates are verified)"
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would send the prompt somewhere the site did not configure: refuse it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class ChatReply:
    text: str
    model: str  # the model id the endpoint says answered
    elapsed_s: float


class ChatClient:
    """A minimal OpenAI-compatible chat client (``/v1/models``, ``/v1/chat/completions``).

    Standard library only: TLS with the system's CA store and verification on, no environment
    proxies, no redirects, a timeout on every request, and retries with backoff on connection
    errors and 502/503/504 (a server still loading its model). A read timeout is not retried: the
    server is up but slow, and waiting again would only double the clinician's wait.
    """

    def __init__(self, options: LLMOptions) -> None:
        self.options = options
        self.base = api_base(options.url)
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context()),
            _NoRedirect(),
        )

    def _request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base}{path}"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.options.api_key:
            headers["Authorization"] = f"Bearer {self.options.api_key}"
        attempts = 1 + max(self.options.retries, 0)
        for attempt in range(attempts):
            request = urllib.request.Request(url, data=data, headers=headers)
            try:
                with self._opener.open(request, timeout=self.options.timeout_s) as response:
                    payload = json.loads(response.read().decode("utf-8"))
                if not isinstance(payload, dict):
                    raise LLMError(f"{url} answered JSON that is not an object")
                return payload
            except urllib.error.HTTPError as exc:
                # The body may echo the prompt (PHI): report the status only.
                if exc.code in _RETRY_STATUS and attempt + 1 < attempts:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise LLMError(f"{url} answered HTTP {exc.code}") from None
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, TimeoutError):
                    raise LLMError(f"{url} did not answer within {self.options.timeout_s:g} s") from None
                if isinstance(reason, ssl.SSLError):
                    raise LLMError(f"{url}: TLS failed ({reason.__class__.__name__})") from None
                if attempt + 1 < attempts:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise LLMError(f"cannot reach {url} ({type(reason).__name__}: {reason})") from None
            except TimeoutError:
                raise LLMError(f"{url} did not answer within {self.options.timeout_s:g} s") from None
            except (ConnectionError, OSError) as exc:
                if attempt + 1 < attempts:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise LLMError(f"cannot reach {url} ({type(exc).__name__})") from None
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise LLMError(f"{url} answered something that is not JSON") from None
        raise AssertionError("unreachable")

    def model_id(self) -> str:
        """The configured model, else the first one the endpoint lists."""
        if self.options.model:
            return self.options.model
        data = self._request("/models").get("data")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "id" not in data[0]:
            raise LLMError(f"{self.base}/models lists no model; set notes.llm_model")
        return str(data[0]["id"])

    def chat(self, messages: Sequence[dict[str, str]], model: str) -> ChatReply:
        started = time.perf_counter()
        body = {
            "model": model,
            "messages": list(messages),
            "max_tokens": self.options.max_tokens,
            "temperature": self.options.temperature,
            "stream": False,
        }
        payload = self._request("/chat/completions", body)
        try:
            text = payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{self.base}/chat/completions answered without choices[0].message") from None
        return ChatReply(str(text), str(payload.get("model") or model), time.perf_counter() - started)


# -- prompts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionPrompt:
    """What the model sees for one section, and which sentence ids it may cite."""

    key: str
    messages: tuple[dict[str, str], ...]
    ids: frozenset[int]  # 1-based indices into reading.reads


def _describe(finding: Finding) -> str:
    flags = [
        word
        for word, on in (
            ("denied", finding.negated),
            ("past", finding.historical),
            ("family member", finding.family),
            ("hypothetical", finding.hypothetical),
            ("uncertain", finding.uncertain),
        )
        if on
    ]
    details = [f"{k} {v}" for k, v in finding.attributes]
    extra = "; ".join([*flags, *details])
    return f"{finding.name} ({finding.category.lower()}{'; ' + extra if extra else ''})"


def _wanted(kind: str, r: Read) -> bool:
    """Whether transcript sentence ``r`` may feed content of this kind."""
    if r.role in _KIND_ROLES.get(kind, ()):
        return True
    hits = [f for f in r.findings if f.category in _KIND_CATEGORIES.get(kind, ())]
    if kind == "history":
        hits = [f for f in hits if f.historical]
    elif kind == "family_history":
        hits = [f for f in hits if f.family]
    elif kind in ("assessment", "assessment_plan") and r.sentence.speaker != "clinician":
        hits = []  # the clinician's assessment, not the patient's worry
    if kind in _HISTORY_KINDS and r.role not in (HPI, DICTATION, SKIP):
        return False  # what the clinician examines, finds or orders is not history
    return bool(hits)


def section_ids(reading: Reading, spec: SectionSpec) -> list[int]:
    """The 1-based ids of the transcript sentences that may feed this section.

    The clinical drafter's roles pick most of them; findings add the rest (a dose said in passing
    belongs to the medication list wherever it was said). A cue-only template gets every sentence
    that is not small talk.
    """
    chosen: set[int] = set()
    for i, r in enumerate(reading.reads):
        if any(_wanted(kind, r) for kind in spec.content) if spec.content else r.role != SKIP:
            chosen.add(i)
            # A question comes with its answer: "Any fever?" "No." is a review-of-systems fact.
            if r.sentence.text.rstrip().endswith("?") and i + 1 < len(reading.reads):
                chosen.add(i + 1)
    return [i + 1 for i in sorted(chosen)]


def build_prompt(reading: Reading, template: Template, spec: SectionSpec) -> SectionPrompt:
    """A compact prompt for one section: its sentences numbered, their findings listed."""
    lines: list[str] = []
    findings: list[str] = []
    ids: set[int] = set()
    used = 0
    for sid in section_ids(reading, spec):
        r = reading.reads[sid - 1]
        speaker = r.sentence.speaker or "unknown"
        line = f"[S{sid}] ({speaker}) {r.sentence.text.strip()}"
        if used + len(line) > _MAX_EVIDENCE_CHARS:
            break  # later sentences are left out rather than overflowing the context
        used += len(line)
        lines.append(line)
        ids.add(sid)
        findings.extend(f"- {_describe(f)} [S{sid}]" for f in r.findings)
    hints = [_KIND_HINTS[k] for k in spec.content if k in _KIND_HINTS]
    user = USER_PROMPT.format(
        note_title=template.title,
        section_title=spec.title,
        section_hint=f" ({'; '.join(hints)})" if hints else "",
        sentences="\n".join(lines) or "(none)",
        findings="\n".join(dict.fromkeys(findings)) or "(none)",
    )
    messages = ({"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user})
    return SectionPrompt(spec.key, messages, frozenset(ids))


# -- answers ----------------------------------------------------------------------------------

# [S4] [S4, S7] [S4-S6] [S4, 7] (S4) 【S4】: the first id needs its "S", so "[1]" or "(2)" is no citation.
_CITATION = re.compile(r"[\[(【]\s*(S\s*\d+(?:\s*(?:[-–,;]|and)\s*S?\s*\d+)*)\s*[\])】]", re.IGNORECASE)
_ID = re.compile(r"(\d+)(?:\s*[-–]\s*S?\s*(\d+))?", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)]|#+)\s+")
_ENDED = re.compile(r"[.!?][\"')\]]*$")
_MAX_RANGE = 10


@dataclass(frozen=True)
class ParsedSentence:
    text: str
    ids: tuple[int, ...]  # every id cited, valid or not, in order


def _cited(group: str) -> list[int]:
    ids: list[int] = []
    for m in _ID.finditer(group):
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        if last < first or last - first > _MAX_RANGE:
            last = first
        ids.extend(range(first, last + 1))
    return ids


_ECHO = re.compile(r"^\s*\((?:patient|clinician|unknown)\)\s*|\[S#\]", re.IGNORECASE)


def _clean(text: str) -> str:
    text = _ECHO.sub("", text.replace("**", "").replace("__", ""))  # our prompt's format, echoed
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip(" \t-–")


def parse_answer(answer: str, section_title: str = "") -> list[ParsedSentence]:
    """Sentences of a model's answer, each with the ids cited after it.

    A citation belongs to the sentence it follows ("... for 2 days. [S4]" or "... for 2 days [S4].");
    a citation that opens a line belongs to the sentence after it. Several sentences followed by one
    citation: only the last is cited, since the instructions ask for a citation after each.
    """
    out: list[tuple[str, list[int]]] = []
    title = section_title.strip().lower().rstrip(":")
    for raw in answer.splitlines():
        line = _BULLET.sub("", raw.replace("**", "")).strip()
        if title and line.lower().startswith(title):
            rest = line[len(title) :]
            if not rest.strip() or rest.lstrip().startswith(":"):
                line = rest.lstrip().lstrip(":").strip()
        if not line or line.strip(". ").upper() == "NONE":
            continue
        pending: list[int] = []  # citations seen before this line's first sentence
        line_start = len(out)
        pos = 0
        for match in [*_CITATION.finditer(line), None]:
            chunk = line[pos : match.start()] if match else line[pos:]
            for part in re.split(r"(?<=[.!?])\s+", chunk):
                if not part.strip():
                    continue
                if len(out) > line_start and not _ENDED.search(out[-1][0]):
                    out[-1] = (f"{out[-1][0]} {part.strip()}", out[-1][1])  # the sentence goes on
                elif len(out) > line_start and not re.search(r"[A-Za-z0-9]", part):
                    out[-1] = (out[-1][0] + part.strip(), out[-1][1])  # a stray "." after a citation
                else:
                    out.append((part.strip(), pending))
                    pending = []
            if match is None:
                break
            ids = _cited(match.group(1))
            if len(out) > line_start:
                out[-1][1].extend(ids)
            else:
                pending.extend(ids)
            pos = match.end()
    parsed = [ParsedSentence(_clean(text), tuple(ids)) for text, ids in out]
    return [p for p in parsed if re.search(r"[A-Za-z]", p.text)]


def _join(groups: Sequence[tuple[EvidenceSpan, ...]]) -> tuple[EvidenceSpan, ...]:
    seen: dict[tuple[int, float, float], EvidenceSpan] = {}
    for group in groups:
        for span in group:
            seen.setdefault((span.segment_id, span.start_s, span.end_s), span)
    return tuple(sorted(seen.values(), key=lambda s: (s.start_s, s.segment_id)))


def to_note_sentences(
    parsed: Sequence[ParsedSentence], reading: Reading, allowed: frozenset[int]
) -> list[NoteSentence]:
    """NoteSentences whose evidence is the union of the valid cited sentences' spans.

    A valid id is one the section's prompt showed; anything else (S99, an id from elsewhere) is
    ignored. A sentence left with no valid id has no evidence, and the check removes it.
    """
    out: list[NoteSentence] = []
    for p in parsed:
        valid = [i for i in dict.fromkeys(p.ids) if i in allowed and 1 <= i <= len(reading.reads)]
        reads = [reading.reads[i - 1] for i in valid]
        speakers = {r.sentence.speaker for r in reads}
        speaker = speakers.pop() if len(speakers) == 1 else None
        out.append(NoteSentence(p.text, _join([r.sentence.evidence for r in reads]), speaker))
    return out


# -- drafting ---------------------------------------------------------------------------------


def drafter_name(model: str) -> str:
    return f"{DRAFTER_ID} (model={model}, prompt sha256={PROMPT_SHA256})"


def _fallback(
    transcript: Transcript, template: Template, transcript_sha256: str, created_at: datetime | None
) -> NoteDraft:
    """What ``Pipeline.draft`` would have written without a model."""
    if template.structured:
        return draft_clinical_note(transcript, template, transcript_sha256, created_at)
    return draft_note(transcript, template, transcript_sha256, created_at)


def draft_llm_note(
    transcript: Transcript,
    template: Template,
    transcript_sha256: str,
    options: LLMOptions,
    created_at: datetime | None = None,
) -> NoteDraft:
    """Draft with the site's model, section by section; fall back to the clinical drafter on failure.

    The result has not been checked yet: the caller runs the faithfulness check on it, as on
    every draft.
    """
    client = ChatClient(options)  # a malformed or unsafe URL is a ConfigError, not a fallback
    if not transcript.has_speech:
        return _fallback(transcript, template, transcript_sha256, created_at)
    started = time.perf_counter()
    try:
        model = client.model_id()
        reading = read_visit(transcript)
        sections: list[NoteSection] = []
        for spec in template.sections:
            sentences: list[NoteSentence] = []
            if any(k != "icd10" for k in spec.content) or not spec.content:
                prompt = build_prompt(reading, template, spec)
                if prompt.ids:
                    reply = client.chat(prompt.messages, model)
                    model = reply.model or model
                    parsed = parse_answer(reply.text, spec.title)
                    sentences = to_note_sentences(parsed, reading, prompt.ids)
                    log.info(
                        "llm.section",
                        encounter_id=transcript.header.encounter_id,
                        section=spec.key,
                        cited=sum(1 for s in sentences if s.evidence),
                        uncited=sum(1 for s in sentences if not s.evidence),
                        elapsed_s=reply.elapsed_s,
                    )
            if "icd10" in spec.content:
                # Codes are looked up by rule, never written by the model.
                sentences += render_icd10(reading)
            unique = {s.text: s for s in sentences}
            sections.append(NoteSection(spec.key, spec.title, tuple(unique.values())))
    except LLMError as exc:
        # the reason goes to the note's notice, not the log: a server's error text may echo the prompt
        log.warning("llm.failed", encounter_id=transcript.header.encounter_id, error=exc.__class__.__name__)
        note = _fallback(transcript, template, transcript_sha256, created_at)
        notice = (
            f"Abstractive drafting ({DRAFTER_ID}) failed ({exc}). "
            f"This note was drafted by {note.provenance.drafter.split(' ')[0]} instead."
        )
        return replace(note, notices=(*note.notices, notice))
    log.info(
        "llm.draft",
        encounter_id=transcript.header.encounter_id,
        sections=len(sections),
        elapsed_s=time.perf_counter() - started,
    )
    notices: list[str] = []
    if not any(s.sentences for s in sections):
        notices.append("The language model wrote nothing that could be placed in a note section.")
    return assemble_note(
        transcript, template, sections, notices, drafter_name(model), transcript_sha256, created_at
    )
