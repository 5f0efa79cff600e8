"""The note as an editor wants it: plain text for textareas, simple HTML for rich editors.

Plain text starts from the Markdown the inbox writes (``ambient.notes.render``) and removes the
markup a clinician's editor would show literally. HTML is built from the note's structure with
every piece of note text escaped: note text comes from speech, and a transcript that says
``<img onerror=…>`` must land as those characters, never as markup in the EHR page.
"""

from __future__ import annotations

import html
import re

from ambient.notes.render import note_to_markdown
from ambient.types import NoteDraft, NoteSentence

_TAG = re.compile(r"</?(sub|small)>")
_EMPHASIS = re.compile(r"(\*\*|\*|_|`)(?=\S)(.+?)(?<=\S)\1")


def note_to_plain_text(note: NoteDraft) -> str:
    """Markdown without its markup: headings, bullets and evidence times stay, symbols go."""
    lines: list[str] = []
    for line in note_to_markdown(note).splitlines():
        line = _TAG.sub("", line)
        if line.startswith("#"):
            line = line.lstrip("#").strip()
        elif line.startswith("> "):
            line = line[2:]
        elif line.strip() == "---":
            line = ""
        line = _EMPHASIS.sub(r"\2", line)
        lines.append(line.rstrip())
    while lines and not lines[-1]:
        lines.pop()
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text)


def _sentence_html(sentence: NoteSentence) -> str:
    text = html.escape(sentence.text)
    if not sentence.evidence:
        return f"<li>{text}</li>"
    start, end = sentence.evidence[0].start_s, sentence.evidence[-1].end_s
    return f"<li>{text} <small>[{_clock(start)}–{_clock(end)}]</small></li>"


def _clock(seconds: float) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def note_to_html(note: NoteDraft) -> str:
    """Headings, paragraphs and lists only: tags every editor's schema keeps."""
    esc = html.escape
    parts = [
        f"<h2>{esc(note.title)}</h2>",
        f"<p><em>DRAFT for clinician review</em> · encounter {esc(note.encounter_id)}</p>",
    ]
    parts += [f"<p><strong>Note:</strong> {esc(n)}</p>" for n in note.notices]
    for section in note.sections:
        parts.append(f"<h3>{esc(section.title)}</h3>")
        if section.sentences:
            parts.append("<ul>" + "".join(_sentence_html(s) for s in section.sentences) + "</ul>")
        else:
            parts.append("<p><em>Nothing recorded.</em></p>")
    prov = note.provenance
    parts.append(
        f"<p><small>Template {esc(prov.template.id)} {esc(prov.template.version)} · "
        f"drafter {esc(prov.drafter)} · {esc(prov.pipeline_version)}</small></p>"
    )
    return "".join(parts)
