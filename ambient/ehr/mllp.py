"""MLLP transport for HL7 v2: a sans-I/O framer, a small asyncio client, and the MLLP sink.

MLLP wraps each message as ``<VT> message <FS><CR>``. :class:`MllpFramer` only turns bytes into
messages (``feed``) and messages into bytes (``frame``), so it is tested without sockets; the
client adds connect/send/receive with a timeout on every step. One connection per delivery keeps
the sink stateless; interface engines handle that fine at note rates.

Outcomes: ACK AA/CA → delivered; AE/AR/CE/CR → permanent (the peer's reason goes to the
dead-letter entry); no connection, no answer in time, or a dropped connection → retryable.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from urllib.parse import urlsplit

from ambient.ehr.errors import PermanentDeliveryError, RetryableDeliveryError, TargetError, short_reason
from ambient.ehr.hl7v2 import control_id, document_number, mdm_t02, parse_ack
from ambient.ehr.options import DeliveryOptions
from ambient.notes.render import note_sha256
from ambient.types import DeliveryReceipt, EncounterContext, NoteDraft

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
MAX_MESSAGE_BYTES = 16 << 20


class MllpFramer:
    """Bytes in, whole messages out. Bytes before a start block are line noise and are dropped."""

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self.max_bytes = max_bytes

    @staticmethod
    def frame(message: bytes) -> bytes:
        return START_BLOCK + message + END_BLOCK

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        while True:
            start = self._buffer.find(START_BLOCK)
            if start < 0:
                self._buffer.clear()
                return messages
            end = self._buffer.find(END_BLOCK, start + 1)
            if end < 0:
                del self._buffer[:start]
                if len(self._buffer) > self.max_bytes:
                    raise ValueError(f"MLLP message larger than {self.max_bytes} bytes")
                return messages
            messages.append(bytes(self._buffer[start + 1 : end]))
            del self._buffer[: end + len(END_BLOCK)]


async def exchange(host: str, port: int, message: bytes, timeout_s: float) -> bytes:
    """Send one framed message and wait for one framed answer; every step is bounded."""
    where = f"mllp://{host}:{port}"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError) as exc:
        raise RetryableDeliveryError(
            f"cannot connect to {where} ({type(exc).__name__}); will retry"
        ) from None
    framer = MllpFramer()
    try:
        writer.write(framer.frame(message))
        await asyncio.wait_for(writer.drain(), timeout_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            data = await asyncio.wait_for(reader.read(65536), remaining)
            if not data:
                raise RetryableDeliveryError(f"{where} closed the connection without an ACK; will retry")
            answers = framer.feed(data)
            if answers:
                return answers[0]
    except TimeoutError:
        raise RetryableDeliveryError(f"no ACK from {where} within {timeout_s:g} s; will retry") from None
    except (OSError, ValueError) as exc:
        raise RetryableDeliveryError(f"MLLP exchange with {where} failed ({type(exc).__name__})") from None
    finally:
        writer.close()
        # A peer that vanished mid-close changes nothing about the outcome decided above.
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


class MllpSink:
    name = "mllp"

    def __init__(self, host: str, port: int, options: DeliveryOptions | None = None) -> None:
        self.host = host
        self.port = port
        self.options = options or DeliveryOptions()

    def deliver(self, note: NoteDraft, context: EncounterContext) -> DeliveryReceipt:
        """Blocking: runs its own event loop (call through ``asyncio.to_thread`` from async code)."""
        message = mdm_t02(note, context, self.options)
        answer = asyncio.run(
            exchange(self.host, self.port, message.encode("utf-8"), self.options.hl7_timeout_s)
        )
        ack = parse_ack(answer.decode("utf-8", errors="replace"))
        sent_id = control_id(note)
        if ack.control_id != sent_id:
            raise RetryableDeliveryError(
                f"mllp://{self.host}:{self.port} acknowledged message {ack.control_id!r}, not {sent_id!r}"
            )
        if not ack.accepted:
            raise PermanentDeliveryError(
                f"mllp://{self.host}:{self.port} rejected the note with {ack.code}: "
                f"{short_reason(ack.text) or 'no reason given'}"
            )
        return DeliveryReceipt(
            sink=self.name,
            encounter_id=note.encounter_id,
            note_sha256=note_sha256(note),
            locations=(f"mllp://{self.host}:{self.port}/{sent_id}", f"TXA-12:{document_number(note)}"),
            delivered_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )


def open_sink(rest: str, options: DeliveryOptions) -> MllpSink:
    """``mllp://HOST:PORT`` (the registry passes ``//HOST:PORT``)."""
    parts = urlsplit(f"mllp:{rest}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in {"", "/"}:
        raise TargetError(f"MLLP target 'mllp:{rest}' must look like mllp://HOST:PORT")
    return MllpSink(parts.hostname, port, options)
