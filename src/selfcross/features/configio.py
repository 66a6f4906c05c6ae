"""The ``features.json`` file: the extractor settings of every modality, in and out.

Why: a data root and every run folder carry the exact extractor settings, so prediction on
a new clip computes the same features the model was trained on. Unknown keys are an error
(a typo must not silently fall back to a default).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfcross.config import ConfigMixin
from selfcross.errors import ConfigError, DataError
from selfcross.features.audio import AudioConfig
from selfcross.features.pretrained import CONFIG_CLASSES as PRETRAINED_CLASSES
from selfcross.features.pretrained import is_hf_config
from selfcross.features.text import TextConfig
from selfcross.features.video import VideoConfig

#: File name of the extractor settings in a data root and in ``RUN_DIR/features/``.
FEATURES_JSON = "features.json"

#: The settings class of each modality in ``features.json``.
CONFIG_CLASSES: dict[str, type[ConfigMixin]] = {
    "audio": AudioConfig,
    "text": TextConfig,
    "video": VideoConfig,
}


def config_class(modality: str, config: Any) -> type[ConfigMixin]:
    """The config class of one modality's settings: a pretrained (``hf:``) encoder's own class
    when ``config`` names one, else the modality's built-in extractor config."""
    return PRETRAINED_CLASSES[modality] if is_hf_config(config) else CONFIG_CLASSES[modality]


def save_feature_configs(root: str | Path, configs: dict[str, Any]) -> Path:
    """Write ``root/features.json`` = ``{"audio": {...}, "text": {...}, "video": {...}}``.

    Args:
        root: a folder (created if needed) or a path ending in ``.json``.
        configs: modality name -> config dataclass (or an already plain dict); modalities
            that were not extracted are simply left out.

    Returns:
        The path written.
    """
    classes = CONFIG_CLASSES
    out: dict[str, Any] = {}
    for name, cfg in configs.items():
        if name not in classes:
            raise ConfigError(f"features.json: unknown modality {name!r} (use {', '.join(classes)})")
        d = cfg if isinstance(cfg, dict) else cfg.to_dict()
        out[name] = config_class(name, d).from_dict(d).to_dict()  # validates plain dicts too
    path = Path(root)
    if path.suffix != ".json":
        path.mkdir(parents=True, exist_ok=True)
        path = path / FEATURES_JSON
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_feature_configs(path: str | Path) -> dict[str, Any]:
    """Read ``features.json`` (a file, or a folder holding one) into config dataclasses.

    Returns:
        modality name -> ``AudioConfig`` / ``TextConfig`` / ``VideoConfig`` (only the
        modalities present in the file).

    Raises:
        DataError: the file is missing, not JSON, or holds unknown modalities/keys.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FEATURES_JSON
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(path, "no such feature settings file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise DataError(path, "expected a JSON object with keys audio/text/video")
    classes = CONFIG_CLASSES
    out: dict[str, Any] = {}
    for name, d in raw.items():
        if name not in classes:
            raise DataError(path, f"unknown modality {name!r} (expected {', '.join(classes)})")
        try:
            out[name] = config_class(name, d).from_dict(d)
        except (ConfigError, TypeError) as e:
            raise DataError(path, f"{name}: {e}") from None
    return out
