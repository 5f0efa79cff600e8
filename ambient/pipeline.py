"""One encounter through the whole flow: input → transcript → note. No I/O policy, no UI.

The CLI commands, the batch workers and (later) the agent all call this, so a recorded encounter
and a live one make the same transcript and the same note. The speech model is loaded on first
use and kept, because loading costs more than transcribing a short clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ambient import PIPELINE_VERSION
from ambient.asr.models import resolve_model
from ambient.asr.prompt import build_prompt, prompt_sha256
from ambient.asr.whisper import FasterWhisperTranscriber
from ambient.audio.decode import file_sha256, iter_blocks, probe
from ambient.config import Paths, Settings
from ambient.ehr import lineage
from ambient.ehr.audit import AuditLog
from ambient.errors import InputError, TranscriptFormatError
from ambient.notes.clinical import clinical_nlp, draft_clinical_note
from ambient.notes.drafter import draft_note
from ambient.notes.faithfulness import check_note, enforce
from ambient.notes.llm import LLMOptions, draft_llm_note
from ambient.notes.templates import Template, load_template
from ambient.transcript.dialogue import detokenize, parse_dialogue
from ambient.transcript.serialise import (
    load_transcript_file,
    transcript_from_turns,
    transcript_sha256,
)
from ambient.types import DecodingOptions, NoteDraft, Transcript, TranscriptHeader

TEXT_SUFFIXES = (".txt", ".md", ".dialogue")


def default_encounter_id(sha256: str) -> str:
    """Stable across re-runs and machines: the same audio is the same encounter."""
    return f"enc-{sha256[:12]}"


@dataclass
class Pipeline:
    settings: Settings
    paths: Paths
    _transcriber: FasterWhisperTranscriber | None = None
    _template: Template | None = None
    speakers: str | None = None  # who said what: auto | channels | embeddings | none; None: settings

    @property
    def speakers_mode(self) -> str:
        return self.speakers or self.settings.asr.speakers

    @property
    def template(self) -> Template:
        if self._template is None:
            self._template = load_template(
                self.settings.notes.template, self.settings.notes.templates_dir or None
            )
        return self._template

    @property
    def transcriber(self) -> FasterWhisperTranscriber:
        if self._transcriber is None:
            asr = self.settings.asr
            resolved = resolve_model(asr.model, self.paths.model_cache, asr.compute_type)
            self._transcriber = FasterWhisperTranscriber(resolved, cpu_threads=asr.cpu_threads)
        return self._transcriber

    def check(self) -> None:
        """Resolve the template and the model (sha256 included) without loading the model."""
        _ = self.template
        asr = self.settings.asr
        resolve_model(asr.model, self.paths.model_cache, asr.compute_type)

    def decoding_options(self) -> tuple[DecodingOptions, str | None]:
        asr = self.settings.asr
        prompt = build_prompt(self.template.vocabulary) if asr.clinical_prompt else None
        options = DecodingOptions(
            language=asr.language,
            beam_size=asr.beam_size,
            vad_filter=asr.vad_filter,
            clinical_prompt=asr.clinical_prompt,
            prompt_sha256=prompt_sha256(prompt) if prompt else None,
            word_timestamps=asr.word_timestamps,
            batch_size=asr.batch_size,
            block_s=asr.block_s,
        )
        return options, prompt

    def transcribe_audio(self, path: Path, encounter_id: str | None = None) -> Transcript:
        sha = file_sha256(path)
        info = probe(path, sha)
        if self.speakers_mode != "none":
            from ambient.diarize.attribute import prepare  # torch loads only when asked for

            prepare(path, self.speakers_mode)  # a bad mode or speaker model fails before transcribing
        options, prompt = self.decoding_options()
        transcriber = self.transcriber
        segments = tuple(transcriber.transcribe(iter_blocks(path, options.block_s), options, prompt))
        language = transcriber.stats.language or options.language
        duration_s = transcriber.stats.audio_s or info.duration_s
        header = TranscriptHeader(
            encounter_id=encounter_id or default_encounter_id(sha),
            source_path=str(path),
            source_sha256=sha,
            source_kind="audio",
            duration_s=round(duration_s, 3),
            language=language,
            model=transcriber.model,
            decoding=options,
            pipeline_version=PIPELINE_VERSION,
        )
        transcript = Transcript(header, segments)
        if self.speakers_mode != "none":
            from ambient.diarize import attribute_speakers

            transcript = attribute_speakers(transcript, path, self.speakers_mode, paths=self.paths)
        return transcript

    def load_input(self, path: Path, encounter_id: str | None = None) -> Transcript:
        """Audio, one of our transcript JSON files, or a ``[doctor]``/``D:`` dialogue text."""
        if not path.exists():
            raise InputError(f"{path} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".json":
            return load_transcript_file(path)
        if suffix in TEXT_SUFFIXES:
            return self.load_dialogue(path, encounter_id)
        return self.transcribe_audio(path, encounter_id)

    def load_dialogue(self, path: Path, encounter_id: str | None = None) -> Transcript:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise TranscriptFormatError(f"{path} is not UTF-8 text") from None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        turns = parse_dialogue(text, source=str(path))
        if not turns:
            raise TranscriptFormatError(
                f"{path} holds no dialogue turns; expected lines starting [doctor]/[patient] or D:/P:"
            )
        sha = file_sha256(path)
        return transcript_from_turns(
            [(t.role, detokenize(t.text)) for t in turns],
            source_path=str(path),
            source_sha256=sha,
            encounter_id=encounter_id or default_encounter_id(sha),
            pipeline_version=PIPELINE_VERSION,
        )

    def draft(self, transcript: Transcript, created_at: datetime | None = None) -> NoteDraft:
        """Draft with the site's language model when ``notes.llm_url`` is set, else the clinical
        drafter (or the cue drafter for cue-only user templates), then run the faithfulness check,
        which no draft skips. ``created_at`` (default now) lets a retried finalise redraw the
        same note (ambient/agent/once.py)."""
        sha = transcript_sha256(transcript)
        template = self.template
        if self.settings.notes.llm_url:
            options = LLMOptions.from_settings(self.settings.notes)
            note = draft_llm_note(transcript, template, sha, options, created_at)
        elif template.structured:
            note = draft_clinical_note(transcript, template, sha, created_at)
        else:
            note = draft_note(transcript, template, sha, created_at)
        report = check_note(note, transcript, clinical_nlp())
        note = enforce(note, report, self.settings.notes.unsupported)
        # Lineage: audio → transcript → note, by content hash, in the hash-chained audit trail.
        audit = AuditLog.for_paths(self.paths)
        lineage.transcript_committed(audit, transcript, sha)
        lineage.note_drafted(audit, note)
        return note
