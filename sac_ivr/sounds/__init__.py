"""Voice prompts (pt-BR) for Asterisk: manifest, builder and CLI.

The prompt texts live in ``sounds/manifest.toml``; ``build_sounds`` renders them
with espeak-ng (offline) or gTTS into ``sounds/pt_BR/<name>.{wav,ulaw,alaw,gsm,sln16}``.
An entry marked ``human = true`` is a person's recording and is never overwritten.
"""

from sac_ivr.sounds.build import (
    FORMATS,
    BuildReport,
    MissingToolError,
    SoundsBuildError,
    build_sounds,
    prompt_duration,
)
from sac_ivr.sounds.manifest import ManifestError, Prompt, load_manifest

__all__ = [
    "FORMATS",
    "BuildReport",
    "ManifestError",
    "MissingToolError",
    "Prompt",
    "SoundsBuildError",
    "build_sounds",
    "load_manifest",
    "prompt_duration",
]
