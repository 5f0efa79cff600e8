"""One exception tree for everything ``ambient`` reports to a person.

::

    AmbientError                    exit 1 unless a subclass says otherwise
    ├── UsageError                  exit 2: a flag, a name or a path the user gave is wrong
    │   ├── UnknownModelError       --model names nothing we can load
    │   ├── UnknownTemplateError    --template names no template
    │   └── ConfigError             ambient.toml or an AMBIENT_* variable is malformed
    ├── InputError                  exit 3: an input file cannot be used
    │   ├── AudioDecodeError        not audio, corrupt, or truncated
    │   ├── EmptyAudioError         zero bytes or zero samples
    │   └── TranscriptFormatError   a transcript/dialogue file we cannot parse
    ├── ModelIntegrityError         exit 4: a model file's sha256 differs from its manifest
    ├── TemplateError               exit 5: a template file is malformed
    └── OutputError                 exit 6: an output folder or file cannot be written

Every message names the file concerned and says what to do next, because the person reading it
is a clinician or an integrator, not the author of this code. Each error carries a stable code
(``AMB-E###``) so it can be searched in the docs and in support tickets.
"""

from __future__ import annotations


class AmbientError(Exception):
    """Base class: an error we expected and can explain."""

    exit_code: int = 1
    code: str = "AMB-E000"

    def __str__(self) -> str:
        return f"[{self.code}] {super().__str__()}"


class UsageError(AmbientError):
    exit_code = 2
    code = "AMB-E100"


class UnknownModelError(UsageError):
    code = "AMB-E101"


class UnknownTemplateError(UsageError):
    code = "AMB-E102"


class ConfigError(UsageError):
    code = "AMB-E103"


class InputError(AmbientError):
    exit_code = 3
    code = "AMB-E200"


class AudioDecodeError(InputError):
    code = "AMB-E201"


class EmptyAudioError(InputError):
    code = "AMB-E202"


class TranscriptFormatError(InputError):
    code = "AMB-E203"


class ModelIntegrityError(AmbientError):
    exit_code = 4
    code = "AMB-E300"


class TemplateError(AmbientError):
    exit_code = 5
    code = "AMB-E400"


class OutputError(AmbientError):
    exit_code = 6
    code = "AMB-E500"
