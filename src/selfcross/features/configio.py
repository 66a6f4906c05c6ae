"""JSON in and out for the extractor configs, and the ``features.json`` file.

Why: a data root and every run folder carry the exact extractor settings, so prediction on
a new clip computes the same features the model was trained on. Unknown keys are an error
(a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from selfcross.errors import ConfigError, DataError

#: File name of the extractor settings in a data root and in ``RUN_DIR/features/``.
FEATURES_JSON = "features.json"

C = TypeVar("C", bound="ConfigMixin")


class ConfigMixin:
    """``to_dict``/``from_dict`` for a flat dataclass (tuples become lists in JSON)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Rebuild from :meth:`to_dict` output; unknown keys raise :class:`ConfigError`."""
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kwargs)


def _config_classes() -> dict[str, type[ConfigMixin]]:
    from selfcross.features.audio import AudioConfig
    from selfcross.features.text import TextConfig
    from selfcross.features.video import VideoConfig

    return {"audio": AudioConfig, "text": TextConfig, "video": VideoConfig}


def config_class(modality: str, config: Any) -> type[ConfigMixin]:
    """The config class of one modality's settings: a pretrained (``hf:``) encoder's own class
    when ``config`` names one, else the modality's built-in extractor config."""
    from selfcross.features.pretrained import CONFIG_CLASSES, is_hf_config

    if is_hf_config(config):
        return CONFIG_CLASSES[modality]
    return _config_classes()[modality]


def save_feature_configs(root: str | Path, configs: dict[str, Any]) -> Path:
    """Write ``root/features.json`` = ``{"audio": {...}, "text": {...}, "video": {...}}``.

    Args:
        root: a folder (created if needed) or a path ending in ``.json``.
        configs: modality name -> config dataclass (or an already plain dict); modalities
            that were not extracted are simply left out.

    Returns:
        The path written.
    """
    classes = _config_classes()
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
    classes = _config_classes()
    out: dict[str, Any] = {}
    for name, d in raw.items():
        if name not in classes:
            raise DataError(path, f"unknown modality {name!r} (expected {', '.join(classes)})")
        try:
            out[name] = config_class(name, d).from_dict(d)
        except (ConfigError, TypeError) as e:
            raise DataError(path, f"{name}: {e}") from None
    return out
