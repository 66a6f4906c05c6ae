"""Import of the authors' checkpoints (``smartcameras/SelfCrossAttn``) into :class:`FusionModel`.

Why: users have weights trained with the authors' code, and our reproduction is only
credible if it computes exactly what theirs computes. :func:`from_reference` maps their
parameter names onto ours and returns a tri-modal model (paper shapes) whose logits match
their model's (checked against their outputs in ``tests/test_compat.py``).

Name mapping (theirs -> ours):

================================  ========================================================
``{video,audio}_conv.*``          ``encoders.{video,audio}.conv.*`` (text has no conv)
``{text,video,audio}_encoder.*``  ``encoders.{text,video,audio}.gru.*``
``mha_{t,v,a}`` (self)            ``attentions.self_{text,video,audio}.mha.*``
``mha_{s}_{q}`` (cross)           ``attentions.{q}_from_{s}.mha.*`` — ``q`` queries ``s``:
                                  their forward calls ``mha_v_t(text, video, video)``
``concat_linear.*``               ``head.0.*`` (its input is ``[std, mean]``, see pooling)
``classifier.*``                  ``head.1.*``
================================  ========================================================

Checkpoints come as a state dict (``.pt``/``.pth``, loaded with ``weights_only=True``) or as
the whole-model pickle their training script writes (``torch.save(model)``), which names
their class ``models.TVAModel_Self``. Unpickling such a file normally *runs code named by
the file*; we only read it when the caller trusts it (``trust_pickle=True``), and even then
through a restricted unpickler that resolves nothing but tensor-rebuilding functions and
replaces every class (theirs and torch's modules alike) by an inert stand-in from which
the tensors are collected.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import types
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from selfcross.config import ModelConfig, RunConfig, TrainConfig, paper_shapes
from selfcross.errors import CheckpointError
from selfcross.labels import IEMOCAP7, MODALITIES
from selfcross.models import FusionModel
from selfcross.safepickle import AllowListUnpickler
from selfcross.training.environment import DTYPES, environment_info
from selfcross.training.rundir import check_out_dir, save_run

#: Reference kinds that have published models (tri-modal only).
REFERENCE_KINDS: tuple[str, ...] = ("self", "cross")

_LETTER = {"audio": "a", "video": "v", "text": "t"}
_CROSS_NAME = re.compile(r"^mha_[tva]_[tva]\.")
_SELF_NAME = re.compile(r"^mha_[tva]\.")


def reference_name(ours: str) -> str:
    """The authors' parameter name for one of our tri-modal parameter names.

    >>> reference_name("attentions.text_from_video.mha.in_proj_weight")
    'mha_v_t.in_proj_weight'
    """
    parts = ours.split(".")
    if parts[0] == "encoders":
        mod, sub, rest = parts[1], parts[2], ".".join(parts[3:])
        return f"{mod}_{'conv' if sub == 'conv' else 'encoder'}.{rest}"
    if parts[0] == "attentions":
        name, rest = parts[1], ".".join(parts[3:])  # parts[2] == "mha"
        if name.startswith("self_"):
            return f"mha_{_LETTER[name[5:]]}.{rest}"
        target, source = name.split("_from_")
        return f"mha_{_LETTER[source]}_{_LETTER[target]}.{rest}"
    if parts[0] == "head":
        return f"{('concat_linear', 'classifier')[int(parts[1])]}.{'.'.join(parts[2:])}"
    raise KeyError(ours)


def reference_config(kind: str) -> ModelConfig:
    """The :class:`ModelConfig` of the authors' published tri-modal model of ``kind``."""
    if kind not in REFERENCE_KINDS:
        raise CheckpointError(
            f"reference kind {kind!r} is not one of {', '.join(REFERENCE_KINDS)} "
            "(the authors published only the tri-modal self and cross models)"
        )
    return ModelConfig(kind=kind, modalities=MODALITIES, pooling="stat", shapes=paper_shapes())


def from_reference(
    state_dict: dict[str, torch.Tensor], kind: str, dtype: torch.dtype | None = None
) -> FusionModel:
    """Build our tri-modal model of ``kind`` with the authors' tensors, in eval mode.

    Args:
        state_dict: the authors' parameter names -> tensors (``TVAModel_Self`` or
            ``TVAModel_Cross``).
        kind: ``"self"`` or ``"cross"``.
        dtype: model dtype; default = the checkpoint's floating dtype (so a float64
            checkpoint is not rounded to float32).

    Raises:
        CheckpointError: unknown kind, or missing / unexpected / mis-shaped tensors (all
            listed in one message).
    """
    model = FusionModel(reference_config(kind))
    ours = model.state_dict()
    expected = {reference_name(k): k for k in ours}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = [
        f"{name} {tuple(t.shape)} (expected {tuple(ours[expected[name]].shape)})"
        for name, t in state_dict.items()
        if name in expected and (not isinstance(t, torch.Tensor) or t.shape != ours[expected[name]].shape)
    ]
    if missing or unexpected or misshaped:
        lines = [f"the checkpoint is not the authors' tri-modal {kind!r} model:"]
        if missing:
            lines.append(f"  missing tensors: {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected tensors: {', '.join(unexpected)}")
        if misshaped:
            lines.append(f"  mis-shaped tensors: {', '.join(misshaped)}")
        other = {"self": "cross", "cross": "self"}[kind]
        if any(_CROSS_NAME.match(n) if other == "cross" else _SELF_NAME.match(n) for n in unexpected):
            lines.append(f"  (it looks like the {other!r} model: try kind={other!r})")
        raise CheckpointError("\n".join(lines))
    if dtype is None:
        floats = {t.dtype for t in state_dict.values() if t.is_floating_point()}
        dtype = floats.pop() if len(floats) == 1 else torch.float32
    model = model.to(dtype)
    model.load_state_dict({expected[name]: t for name, t in state_dict.items()}, strict=True)
    return model.eval()


# --------------------------------------------------------------- checkpoints
class _StandIn:
    """Inert replacement for every class a trusted whole-model pickle names.

    Accepts any constructor arguments and keeps the pickled attribute dict; nothing of the
    original class (or any other callable named by the file) is imported or run.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _StandIn:  # noqa: ARG003
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_standin_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("_standin_items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("_standin_list", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("_standin_list", []).extend(values)


def _standin_class(module: str, name: str) -> type:
    return type(name, (_StandIn,), {"__module__": f"selfcross.serve.compat.standin.{module}"})


#: The only real callables a trusted pickle may resolve (what tensors and plain containers need).
_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
}
if hasattr(torch._utils, "_rebuild_parameter_with_state"):
    _ALLOWED[("torch._utils", "_rebuild_parameter_with_state")] = torch._utils._rebuild_parameter_with_state


class _RestrictedUnpickler(AllowListUnpickler):
    """Resolves only :data:`_ALLOWED` (plus dtypes); every other global becomes a stand-in."""

    def __init__(self, file: Any, **kwargs: Any) -> None:
        super().__init__(file, _ALLOWED, **kwargs)

    def unknown_global(self, module: str, name: str) -> Any:
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return _standin_class(module, name)


def _restricted_pickle_module() -> types.ModuleType:
    mod = types.ModuleType("selfcross_restricted_pickle")
    mod.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]

    def load(f: Any, **kwargs: Any) -> Any:
        return _RestrictedUnpickler(f, **kwargs).load()

    mod.load = load  # type: ignore[attr-defined]
    mod.loads = lambda data, **kw: load(io.BytesIO(data), **kw)  # type: ignore[attr-defined]
    mod.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    return mod


def _collect_tensors(obj: Any, prefix: str = "", out: dict[str, torch.Tensor] | None = None) -> dict:
    """``state_dict()`` of a stand-in module tree: ``_parameters``, ``_buffers``, ``_modules``."""
    out = {} if out is None else out
    d = getattr(obj, "__dict__", {})
    for key in ("_parameters", "_buffers"):
        for name, t in (d.get(key) or {}).items():
            if isinstance(t, torch.Tensor):
                out[prefix + name] = t.detach()
    for name, child in (d.get("_modules") or {}).items():
        if child is not None:
            _collect_tensors(child, f"{prefix}{name}.", out)
    return out


def _pickle_globals(path: Path) -> list[str]:
    """Module-level names a (zip-format) torch pickle refers to, for error messages."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith("data.pkl"))
            data = z.read(name)
        names = set()
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                names.add(str(arg).replace(" ", "."))
        plain = ("torch.", "collections.", "__builtin__.", "builtins.")
        return sorted(n for n in names if not n.startswith(plain))
    except Exception:  # best effort only: the message is still clear without it
        return []


def _as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict) and len(obj) <= 4:
                obj = obj[key]
                break
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return {k: v.detach() for k, v in obj.items()}
        raise CheckpointError(f"{path}: holds a dict that is not a state dict (name -> tensor)")
    if isinstance(obj, _StandIn):
        tensors = _collect_tensors(obj)
        if tensors:
            return tensors
    raise CheckpointError(f"{path}: holds neither a state dict nor a pickled model ({type(obj).__name__})")


def load_reference_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read an authors' checkpoint and return its state dict (their names, CPU tensors).

    A state dict is read with ``torch.load(weights_only=True)``, which cannot run code. A
    whole-model pickle (``torch.save(model)``) is read only with ``trust_pickle=True``,
    through a restricted unpickler (see the module docstring).

    Raises:
        CheckpointError: missing/unreadable file, or a whole-model pickle without trust.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust_pickle:
            names = _pickle_globals(path)
            refers = f" (it refers to {', '.join(names)})" if names else ""
            raise CheckpointError(
                f"{path}: this is a whole-model pickle, not a state dict{refers}. Unpickling it "
                "runs code named by the file, so it is refused by default. If you trust where it "
                "came from, pass --trust-pickle (Python: trust_pickle=True); selfcross then reads "
                "only its tensors through a restricted unpickler."
            ) from None
        try:
            obj = torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module()
            )
        except Exception as e2:  # any failure here is a malformed file, not a bug of ours
            raise CheckpointError(f"{path}: cannot read the pickled model ({e2}); first error: {e}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from None
    return _as_state_dict(obj, path)


def import_reference(
    checkpoint: str | Path,
    kind: str,
    out_dir: str | Path,
    trust_pickle: bool = False,
    dtype: str = "float64",
    overwrite: bool = False,
) -> Path:
    """Turn an authors' checkpoint into a normal run folder (``config.json`` + safetensors).

    The run folder has no ``metrics.json`` (nothing was trained or evaluated here); it is
    accepted by ``selfcross evaluate`` and ``load_run``. ``dtype`` is the precision the run
    evaluates in (``float64``: the authors' training precision; exact for float32 weights).
    ``config.data`` records the source checkpoint and its SHA-256.

    Raises:
        CheckpointError: unreadable / untrusted / mismatching checkpoint.
        ConfigError: ``out_dir`` exists and is not empty (unless ``overwrite``).
    """
    import hashlib

    if dtype not in DTYPES:
        raise CheckpointError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    check_out_dir(out_dir, overwrite)
    path = Path(checkpoint)
    state = load_reference_checkpoint(path, trust_pickle=trust_pickle)
    try:
        model = from_reference(state, kind)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    model = model.to(DTYPES[dtype])
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    config = RunConfig(
        model=model.config,
        train=TrainConfig(dtype=dtype, device="cpu"),
        preset="paper",
        class_names=IEMOCAP7.names,
        data={
            "imported_from": str(path.resolve()),
            "checkpoint_sha256": sha.hexdigest(),
            "reference_kind": kind,
        },
        environment=environment_info(torch.device("cpu")),
    )
    return save_run(out_dir, config, model, metrics=None, overwrite=overwrite)
