"""Typed configuration: model, training and run configs, the presets, JSON in and out.

Why dataclasses and not dicts: a run folder's ``config.json`` must rebuild the exact model
and rerun the exact training, years later. Every field has a type, a default (the paper's
value) and a docstring line; unknown keys in a JSON file are an error, not silently ignored.

Presets:
    ``paper``    the authors' computation, quirks included (padding attended and averaged,
                 raw MFCC values), in float32 by default (``dtype="float64"`` is their precision).
    ``improved`` the same architecture with documented fixes switched on (masks, length-aware
                 GRUs, masked means, train-split standardization, AMP on CUDA).
    ``strong``   ``improved`` plus choices for small real corpora, each its own switch below
                 (see :data:`STRONG` and ``docs/improved.md`` for the dev-split evidence).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from selfcross.errors import ConfigError
from selfcross.labels import MODALITIES, parse_modalities
from selfcross.tasks import DEFAULT_TASK, TASKS

MODEL_KINDS: tuple[str, ...] = ("self", "cross", "self+cross")
POOLINGS: tuple[str, ...] = ("stat", "concat", "mean")
PRESETS: tuple[str, ...] = ("paper", "improved", "strong")
TIME_MIXINGS: tuple[str, ...] = ("conv", "pool", "none")
CLASS_WEIGHTS: tuple[str, ...] = ("none", "balanced", "sqrt")
SELECT_ON: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw")
SCHEDULES: tuple[str, ...] = ("plateau", "cosine", "none")
#: Kernel sets (see :mod:`selfcross.models.kernels`): ours, or the authors' ops.
KERNELS: tuple[str, ...] = ("fast", "reference")
#: Float precisions a run can compute in (torch dtypes: :data:`selfcross.training.environment.DTYPES`).
DTYPES: tuple[str, ...] = ("float32", "float64")


C = TypeVar("C", bound="ConfigMixin")


@dataclass(frozen=True)
class OneOf:
    """Constraint: the value is one of ``choices`` (also the CLI's ``choices=``)."""

    choices: tuple[Any, ...]

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`ConfigError` naming ``name`` when ``value`` is not allowed."""
        if value not in self.choices:
            raise ConfigError(f"{name} {value!r} is not one of {', '.join(map(str, self.choices))}")


@dataclass(frozen=True)
class Interval:
    """Constraint: ``low <= value`` and ``value < high`` (``high`` open; ``None`` = unbounded).

    ``optional`` also allows ``None`` (a value filled in later, or "use the default").
    """

    low: float | None = None
    high: float | None = None
    optional: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`ConfigError` naming ``name`` when ``value`` lies outside the interval."""
        if value is None and self.optional:
            return
        ok = value is not None and (self.low is None or value >= self.low) and (
            self.high is None or value < self.high)
        if not ok:
            if self.high is None:
                raise ConfigError(f"{name} must be >= {self.low}, got {value}")
            raise ConfigError(f"{name} must lie in [{self.low}, {self.high}), got {value}")


Constraint = OneOf | Interval


def check_constraints(config: Any) -> None:
    """Check every field of a config dataclass against its class's ``constraints`` table."""
    for name, constraint in type(config).constraints.items():
        constraint.check(name, getattr(config, name))


def choices(cls: type, name: str) -> tuple[Any, ...]:
    """The allowed values of field ``name`` of config class ``cls`` (for argparse ``choices=``)."""
    constraint = cls.constraints[name]
    if not isinstance(constraint, OneOf):
        raise TypeError(f"{cls.__name__}.{name} is not a choice")
    return constraint.choices


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
        _check_keys(cls, d)
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


@dataclass
class ModalityShape:
    """Input shape of one modality and the length its time-mixing convolution maps it to.

    Attributes:
        seq_len: time steps of the padded input (the Conv1d's *channel* axis).
        feat_dim: features per time step.
        mixed_len: output time steps of the 1x1 time-mixing Conv1d; ``None`` = no
            convolution (the paper's text branch).
        layers: ``L`` when each time step holds ``L`` stacked encoder layers ``[L, feat_dim]``
            (a pretrained speech encoder's hidden states), mixed by a learned softmax-weighted
            sum before the encoder; ``None`` = plain ``[feat_dim]`` frames.
    """

    seq_len: int
    feat_dim: int
    mixed_len: int | None
    layers: int | None = None

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Per-step input shape: ``(feat_dim,)`` or ``(layers, feat_dim)``."""
        return (self.feat_dim,) if self.layers is None else (self.layers, self.feat_dim)


def paper_shapes() -> dict[str, ModalityShape]:
    """The paper's input shapes: audio 1000x120 -> 500, video 32x2048 -> 25, text 128x300."""
    return {
        "audio": ModalityShape(1000, 120, 500),
        "video": ModalityShape(32, 2048, 25),
        "text": ModalityShape(128, 300, None),
    }


@dataclass
class ModelConfig:
    """Everything needed to build a :class:`selfcross.models.FusionModel`.

    Attributes:
        kind: ``self`` (attention inside each modality), ``cross`` (every ordered pair,
            target queries source) or ``self+cross`` (both sets of vectors pooled together).
        modalities: canonical modality names used by the model.
        pooling: ``stat`` = the paper's statistical pooling ([std, mean] across attention
            vectors, 2*H wide); ``concat`` = noSP replacement (vectors concatenated, n*H wide);
            ``mean`` = noSP alternative (mean only, H wide). Ignored (identity) when the
            model has a single attention vector (uni-modal self), where SP is undefined.
        shapes: per-modality input shapes (paper values by default).
        hidden: GRU units per direction (attention width is ``2 * hidden``).
        heads: attention heads.
        attn_dropout: dropout on attention weights (part of the model; on in training).
        text_dropout: dropout on word vectors (training only).
        head_hidden: width of the first linear layer of the head.
        n_classes: number of output classes.
        mask_padding: improved: zero padded input frames, key-padding masks in attention.
        packed_gru: improved: length-aware GRU (packed sequences) where time is not mixed.
        masked_mean: improved: temporal mean over valid steps only.
        time_mixing: how audio/video shorten time before the GRU: ``conv`` (the paper's 1x1
            Conv1d over time: every output step a learned mix of all frames), ``pool``
            (order-preserving average over windows of ``pool_stride`` valid frames) or
            ``none``. The text branch never mixes time.
        pool_stride: frames per window for ``time_mixing="pool"``.
        pool_steps: when > 0, each modality's window is ``ceil(seq_len / pool_steps)`` frames
            instead of ``pool_stride``: about ``pool_steps`` steps whatever the frame rate
            (500 frames at 100/s -> windows of 20; 20 word-aligned steps -> no pooling).
        spec_time_masks: SpecAugment-style: spans of audio time steps zeroed per clip (training).
        spec_time_width: the longest such span, in input frames.
        spec_time_share: when > 0, the longest span is this share of the audio's frames
            instead (``round(share * seq_len)``, at least 1): the same share of a clip at any
            frame rate (0.08 = 40 of 500 frames at 100/s, 2 of 20 word-aligned steps).
        spec_feat_masks: spans of audio feature channels zeroed per clip (training).
        spec_feat_width: the widest such span, in channels.
        word_dropout: probability of zeroing a whole word vector (training only).
        tune_word_vectors: the model owns the word-vector table (an ``nn.Embedding``
            initialised from the fold's ``W_embedding.npy``, padding row 0 fixed at zero) and
            trains it with the rest: text reaches the model as word ids ``[B, T]``. Frozen
            GloVe vectors know nothing of emotion; fine-tuning them (Kim 2014's "non-static"
            CNN) lets words move apart by what they signal. Needs text stored as word ids;
            no effect on a model without text.
        vocab_size: rows of that table; filled in from the fold's ``W_embedding.npy`` by
            training (``None`` while the word vectors are not tuned).
    """

    kind: str = "self"
    modalities: tuple[str, ...] = MODALITIES
    pooling: str = "stat"
    shapes: dict[str, ModalityShape] = field(default_factory=paper_shapes)
    hidden: int = 60
    heads: int = 6
    attn_dropout: float = 0.1
    text_dropout: float = 0.25
    head_hidden: int = 60
    n_classes: int = 7
    mask_padding: bool = False
    packed_gru: bool = False
    masked_mean: bool = False
    time_mixing: str = "conv"
    pool_stride: int = 1
    pool_steps: int = 0
    spec_time_masks: int = 0
    spec_time_width: int = 0
    spec_time_share: float = 0.0
    spec_feat_masks: int = 0
    spec_feat_width: int = 0
    word_dropout: float = 0.0
    tune_word_vectors: bool = False
    vocab_size: int | None = None

    #: The allowed values of each constrained field: one table for validation and the CLI.
    constraints: ClassVar[dict[str, Constraint]] = {
        "kind": OneOf(MODEL_KINDS),
        "pooling": OneOf(POOLINGS),
        "time_mixing": OneOf(TIME_MIXINGS),
        "hidden": Interval(1),
        "heads": Interval(1),
        "pool_stride": Interval(1),
        "pool_steps": Interval(0),  # 0 = use pool_stride
        "spec_time_share": Interval(0.0, 1.0),
        "spec_time_masks": Interval(0),
        "spec_time_width": Interval(0),
        "spec_feat_masks": Interval(0),
        "spec_feat_width": Interval(0),
        "word_dropout": Interval(0.0, 1.0),
        "vocab_size": Interval(1, optional=True),
    }

    def __post_init__(self) -> None:
        self.modalities = parse_modalities(tuple(self.modalities))
        self.shapes = {
            k: (v if isinstance(v, ModalityShape) else ModalityShape(**v)) for k, v in self.shapes.items()
        }
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` with a reason if the combination cannot be built."""
        check_constraints(self)
        if self.kind in ("cross", "self+cross") and len(self.modalities) < 2:
            raise ConfigError(
                f"a {self.kind!r} model needs at least two modalities: cross-attention lets one "
                f"modality query another, and {self.modalities[0]!r} has no partner"
            )
        missing = [m for m in self.modalities if m not in self.shapes]
        if missing:
            raise ConfigError(f"no input shape given for modalities {missing}")
        if (2 * self.hidden) % self.heads:
            raise ConfigError(f"attention width {2 * self.hidden} is not divisible by {self.heads} heads")

    def mixes_time(self, modality: str) -> bool:
        """Whether the 1x1 convolution mixes the time steps of ``modality`` (valid lengths
        mean nothing after it)."""
        return self.time_mixing == "conv" and self.shapes[modality].mixed_len is not None

    def uses_lengths(self, modality: str) -> bool:
        """Whether the branch of ``modality`` reads valid lengths: padding masks always; a
        length-aware GRU and the masked mean only where no convolution mixes time."""
        return self.mask_padding or ((self.packed_gru or self.masked_mean) and not self.mixes_time(modality))

    @property
    def needs_lengths(self) -> bool:
        """Whether the model is given valid lengths at all (only the ``improved`` switches read them)."""
        return self.mask_padding or self.packed_gru or self.masked_mean

    @property
    def owns_word_vectors(self) -> bool:
        """Whether the model looks word ids up in a table of its own (``tune_word_vectors``
        with text among the modalities)."""
        return self.tune_word_vectors and "text" in self.modalities

    def stride_for(self, seq_len: int) -> int:
        """The pooling window of a modality of ``seq_len`` steps (see ``pool_steps``)."""
        return max(1, -(-seq_len // self.pool_steps)) if self.pool_steps else self.pool_stride

    def spec_width_for(self, seq_len: int) -> int:
        """The longest SpecAugment time span of audio of ``seq_len`` frames (see ``spec_time_share``)."""
        return max(1, round(self.spec_time_share * seq_len)) if self.spec_time_share else self.spec_time_width

    @property
    def embed_dim(self) -> int:
        """Width of every attention vector (bidirectional GRU output)."""
        return 2 * self.hidden


@dataclass
class TrainConfig:
    """The training protocol; defaults are the authors' (docs/paper.md, Training).

    Attributes:
        seed: seeds torch, numpy and Python's ``random`` and the batch order.
        lr: Adam learning rate.
        batch_size: training batch size (shuffled every epoch).
        max_epochs: cap on epochs (early stopping usually ends sooner); ``0`` = no cap,
            early stopping alone ends the run, as in the authors' loop.
        patience: epochs without a dev-accuracy improvement before stopping.
        plateau_patience: ReduceLROnPlateau patience on dev loss.
        plateau_factor: ReduceLROnPlateau factor.
        dtype: ``float32`` (fast default) or ``float64`` (the authors' precision).
        kernels: ``fast`` (default: our CPU attention and GRU kernels, same function) or
            ``reference`` (the authors' ops: ``nn.MultiheadAttention`` with weights
            requested, ``nn.GRU``), to check or time the authors' computation.
        device: ``auto`` (CUDA if present), ``cpu`` or ``cuda``/``cuda:N``.
        num_threads: torch intra-op threads; ``None`` leaves torch's default.
        standardize: improved: per-feature standardization fitted on the training split.
        amp: improved: automatic mixed precision (bf16) on CUDA; ignored on CPU.
        eval_batch_size: batch size for dev/test evaluation (no effect on results).
        class_weights: ``none`` (the paper), ``balanced`` (cross-entropy weights
            ``n / (k * count_c)`` from the training split's label counts) or ``sqrt`` (their
            square roots: a milder push towards rare classes).
        select_on: the dev metric for early stopping and for the epoch whose weights are
            kept: ``accuracy`` (the paper), ``balanced_accuracy``, ``f1_macro``, ``f1_weighted``.
        optimizer: ``adam`` (the paper) or ``adamw`` (decoupled weight decay).
        weight_decay: ``adamw``'s decoupled decay (with ``adam``: L2 added to the gradients).
        schedule: ``plateau`` (the paper: ReduceLROnPlateau on dev loss), ``cosine`` (linear
            warm-up over ``warmup_epochs``, then cosine decay to 0 at ``max_epochs``), ``none``.
        warmup_epochs: epochs of linear warm-up for ``cosine``.
        modality_dropout: probability of dropping each modality of each training utterance
            (zeroed, length 0; every utterance keeps one), as ``evaluate --perturb drop:m``
            does at test time; 0 = off (every preset). See
            :mod:`selfcross.training.modality_dropout`.
        task: ``classification`` (the paper's: cross-entropy, best dev accuracy) or
            ``regression`` (sentiment scores: one output, L1 loss, best dev MAE; see
            :mod:`selfcross.tasks`).
        max_updates: the epoch cap is at least this many optimizer updates (rounded up to
            whole epochs); 0 = ``max_epochs`` alone. Unused without a cap (``max_epochs=0``).
        warmup_updates: the warm-up lasts at least this many updates; 0 = ``warmup_epochs``.
        patience_updates: early stopping waits at least this many updates; 0 = ``patience``.
        min_updates: early stopping may not end a run before this many updates (0 = any
            epoch). The update counts make a budget scale with the training split's size
            (:mod:`selfcross.training.budget`).
        select_window: the best epoch maximises the mean of the dev selection value over
            this many epochs ending at it (1 = the epoch's own value, the paper's): one
            utterance of a 58-utterance dev split moves its accuracy by 1.7 points.
    """

    seed: int = 1
    lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 10
    plateau_patience: int = 10
    plateau_factor: float = 0.1
    dtype: str = "float32"
    kernels: str = "fast"
    device: str = "auto"
    num_threads: int | None = None
    standardize: bool = False
    amp: bool = False
    eval_batch_size: int = 128
    class_weights: str = "none"
    select_on: str = "accuracy"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "plateau"
    warmup_epochs: int = 0
    modality_dropout: float = 0.0
    task: str = DEFAULT_TASK
    max_updates: int = 0
    warmup_updates: int = 0
    patience_updates: int = 0
    min_updates: int = 0
    select_window: int = 1

    #: The allowed values of each constrained field: one table for validation and the CLI.
    constraints: ClassVar[dict[str, Constraint]] = {
        "task": OneOf(TASKS),
        "dtype": OneOf(DTYPES),
        "kernels": OneOf(KERNELS),
        "batch_size": Interval(1),
        "patience": Interval(1),
        "max_epochs": Interval(0),  # 0 = no cap
        "class_weights": OneOf(CLASS_WEIGHTS),
        "select_on": OneOf(SELECT_ON),
        "optimizer": OneOf(OPTIMIZERS),
        "schedule": OneOf(SCHEDULES),
        "weight_decay": Interval(0.0),
        "warmup_epochs": Interval(0),
        "modality_dropout": Interval(0.0, 1.0),
        "eval_batch_size": Interval(1),
        "num_threads": Interval(1, optional=True),
        "max_updates": Interval(0),
        "warmup_updates": Interval(0),
        "patience_updates": Interval(0),
        "min_updates": Interval(0),
        "select_window": Interval(1),
    }

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field outside its constraint (or a
        combination that cannot run)."""
        check_constraints(self)
        if self.schedule == "cosine" and self.max_epochs == 0:
            # the cosine decays to 0 at the cap: without one the rate would be 0 after warm-up
            raise ConfigError("schedule 'cosine' decays to 0 at the epoch cap and max_epochs 0 means no cap: "
                              "give max_epochs > 0 or use schedule 'plateau' or 'none'")

    def epochs(self) -> Iterator[int]:
        """Epoch numbers 1, 2, ... up to ``max_epochs`` (unbounded when it is 0)."""
        return iter(range(1, self.max_epochs + 1)) if self.max_epochs else itertools.count(1)


@dataclass
class RunConfig(ConfigMixin):
    """One training run: what to build, how to train it, on what data, and where it ran.

    ``data`` and ``environment`` are filled in by the trainer (data path and fingerprint;
    package/torch versions, device, threads) so that ``config.json`` alone says how to
    reproduce the run.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str = "paper"
    class_names: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    #: The allowed values of each constrained field: one table for validation and the CLI.
    constraints: ClassVar[dict[str, Constraint]] = {"preset": OneOf(PRESETS)}

    def __post_init__(self) -> None:
        check_constraints(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:  # type: ignore[override]
        """Rebuild from :meth:`to_dict` output; unknown keys raise :class:`ConfigError`."""
        d = dict(d)
        model = _build(ModelConfig, d.pop("model", {}))
        train = _build(TrainConfig, d.pop("train", {}))
        out = _build(cls, d)
        out.model, out.train = model, train
        out.class_names = tuple(out.class_names)
        return out

    def save(self, path: str | Path) -> None:
        """Write as indented JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a ``config.json``; a malformed file raises :class:`ConfigError` naming it."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


T = TypeVar("T")


def _check_keys(cls: type, d: dict[str, Any]) -> None:
    """:class:`ConfigError` naming every key of ``d`` that is no field of ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")


def _build(cls: type[T], d: dict[str, Any]) -> T:
    _check_keys(cls, d)
    if cls is ModelConfig and "modalities" in d:
        d = {**d, "modalities": tuple(d["modalities"])}
    return cls(**d)


#: The ``improved`` preset: the paper's architecture with its documented fixes switched on.
IMPROVED: dict[str, dict[str, Any]] = {
    "model": {"mask_padding": True, "packed_gru": True, "masked_mean": True},
    "train": {"standardize": True, "amp": True},
}

#: The ``strong`` preset: ``improved`` plus these switches, chosen on the dev splits of the
#: RAVDESS and MELD benchmarks (docs/improved.md has the measurements).
STRONG: dict[str, dict[str, Any]] = {
    "model": {
        "time_mixing": "pool",
        "pool_stride": 20,
        # a window in steps, not frames: ~25 steps at any frame rate (20 frames at 100/s)
        "pool_steps": 25,
        "spec_time_masks": 2,
        "spec_time_width": 40,
        "spec_time_share": 0.08,  # 40 of 500 frames, at any frame rate
        "spec_feat_masks": 2,
        "spec_feat_width": 12,
        "word_dropout": 0.1,
    },
    "train": {
        "class_weights": "none",
        "select_on": "f1_weighted",
        "optimizer": "adamw",
        "lr": 1e-3,  # with a budget of >= 2,000 updates (3e-3 won at 30 epochs; docs/improved.md)
        "weight_decay": 0.01,
        "schedule": "cosine",
        "warmup_epochs": 2,
        "max_epochs": 30,
        "patience": 10,
        # the budget in optimizer updates (each the larger of the epoch and the update count):
        # a 300-clip corpus trains ~2,000 updates like a 10,000-utterance one, not ~300
        "max_updates": 2000,
        "warmup_updates": 200,
        "patience_updates": 500,
        "min_updates": 800,
        "select_window": 3,
    },
}

#: Each preset as the layers it stacks on the paper's defaults, in order.
PRESET_LAYERS: dict[str, tuple[dict[str, dict[str, Any]], ...]] = {
    "paper": (),
    "improved": (IMPROVED,),
    "strong": (IMPROVED, STRONG),
}

_SECTIONS: dict[str, type] = {"model": ModelConfig, "train": TrainConfig}


@functools.cache
def _field_defaults(cls: type) -> dict[str, Any]:
    """Every field's default in its JSON form (``default_factory`` fields built once)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return json.loads(json.dumps(out, default=dataclasses.asdict))


def preset_values(preset: str) -> dict[str, dict[str, Any]]:
    """Every field any preset sets, at the value ``preset`` gives it (the paper's default
    when its layers leave the field alone): the preset's whole definition."""
    OneOf(PRESETS).check("preset", preset)
    every = [layer for layers in PRESET_LAYERS.values() for layer in layers]
    out = {
        section: {k: _field_defaults(cls)[k] for layer in every for k in layer.get(section, {})}
        for section, cls in _SECTIONS.items()
    }
    for layer in PRESET_LAYERS[preset]:
        for section, values in layer.items():
            out[section].update(values)
    return out


def apply_preset(config: RunConfig, preset: str) -> RunConfig:
    """Set the whole definition of a preset on ``config`` (in place) and return it.

    Every field that any preset sets is set (:func:`preset_values`): ``paper`` after
    ``strong`` is the paper again, not strong relabelled. The other fields (model kind,
    modalities, seed, device...) keep their values. Change individual fields afterwards;
    ``config.preset`` records the starting point.
    """
    for section, values in preset_values(preset).items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    config.preset = preset
    config.model.validate()
    config.train.validate()
    return config


def set_epoch_cap(config: RunConfig, max_epochs: int) -> RunConfig:
    """Cap training at exactly ``max_epochs`` (0 = none), with the budget counted in epochs.

    An explicit cap drops a preset's update counts (``max_updates``, ``warmup_updates``,
    ``patience_updates``, ``min_updates``): on a small corpus they would raise the cap, or
    make a short run one long warm-up.
    """
    config.train.max_epochs = max_epochs
    for name in ("max_updates", "warmup_updates", "patience_updates", "min_updates"):
        setattr(config.train, name, 0)
    config.train.__post_init__()  # e.g. a cosine schedule needs a cap
    return config


#: Config fields that do not change a run's result (or are filled in from the data) and are
#: therefore left out of :func:`config_hash`: (section, key); section None = top level.
#: ``train.device`` is not here: it enters the hash as its kind (see :func:`device_kind`).
HASH_EXCLUDED: tuple[tuple[str | None, str], ...] = (
    (None, "data"), (None, "environment"), (None, "class_names"),
    ("model", "shapes"), ("model", "n_classes"), ("model", "vocab_size"),
    ("train", "num_threads"), ("train", "eval_batch_size"),
)

#: The fields of the first results stores, hashed at every value so that those runs keep
#: their identity. Frozen: every field added since is hashed only where it differs from
#: its default (:func:`config_hash`), so adding a field changes no stored run's hash.
HASHED_AT_EVERY_VALUE: dict[str, frozenset[str]] = {
    "model": frozenset({"kind", "modalities", "pooling", "hidden", "heads", "attn_dropout",
                        "text_dropout", "head_hidden", "mask_padding", "packed_gru", "masked_mean"}),
    "train": frozenset({"seed", "lr", "batch_size", "max_epochs", "patience", "plateau_patience",
                        "plateau_factor", "dtype", "kernels", "device", "standardize", "amp"}),
}

#: Bump when the default of a field outside :data:`HASHED_AT_EVERY_VALUE` changes: a config
#: leaving that field at its default would otherwise hash like the runs stored under the
#: old default, which computed something else. From 2 on it enters every hash (every run
#: is planned afresh). See docs/results-store.md.
DEFAULTS_VERSION = 1


def device_kind(spec: str | None) -> str:
    """``cpu`` or ``cuda``: the part of a device request that changes a run's numbers.

    CPU and GPU kernels round differently, so they are different runs; which GPU
    (``cuda:0`` or ``cuda:1``) is not. ``auto`` is resolved on the machine asking.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec.split(":", 1)[0]


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the result-relevant part of a ``RunConfig.to_dict()`` (see :func:`hashed_config`).

    The planned config and the run folder's ``config.json`` (shapes fitted to the fold,
    data and environment filled in) hash the same; the fold's content is covered by the
    separate data fingerprint. Device and dtype are part of a run's identity; thread count
    and evaluation batch size are not.
    """
    return hashlib.sha256(json.dumps(hashed_config(config), sort_keys=True).encode()).hexdigest()


def hashed_config(config: dict[str, Any]) -> dict[str, Any]:
    """What :func:`config_hash` hashes: the config without :data:`HASH_EXCLUDED`, every field
    outside :data:`HASHED_AT_EVERY_VALUE` only where it differs from its default (a config
    written before the field existed hashes like one holding its default), the device as
    its kind, and :data:`DEFAULTS_VERSION` from 2 on."""
    d = copy.deepcopy(config)
    for section, key in HASH_EXCLUDED:
        (d if section is None else d.get(section, {})).pop(key, None)
    for section, cls in _SECTIONS.items():
        values = d.get(section)
        if not isinstance(values, dict):
            continue
        for key, default in _field_defaults(cls).items():
            if key not in HASHED_AT_EVERY_VALUE[section] and key in values and values[key] == default:
                del values[key]
    if "train" in d:
        d["train"]["device"] = device_kind(d["train"].get("device"))
    if DEFAULTS_VERSION != 1:
        d["defaults_version"] = DEFAULTS_VERSION
    return d


#: Top-level keys of a config file (``best.json`` of ``selfcross tune``): the preset to start
#: from, the label its runs get in a results store, the switches set on top, and what
#: produced it (``tuning``: informational, never applied).
CONFIG_FILE_KEYS: tuple[str, ...] = ("preset", "name", "model", "train", "tuning")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a config file (JSON, or YAML for ``.yaml``/``.yml``): ``{"preset", "name",
    "model": {...}, "train": {...}}``; a malformed file raises :class:`ConfigError` naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml  # optional: only YAML files need it

            d = yaml.safe_load(text)
        else:
            d = json.loads(text)
    except ImportError:
        raise ConfigError(f"{path}: YAML config files need PyYAML (pip install 'selfcross[tune]')") from None
    except Exception as e:  # json.JSONDecodeError or yaml.YAMLError (yaml is an optional import)
        raise ConfigError(f"{path}: not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'} "
                          f"({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected an object with keys {', '.join(CONFIG_FILE_KEYS)}")
    unknown = sorted(set(d) - set(CONFIG_FILE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown config file keys: {', '.join(unknown)}")
    if d.get("preset", "paper") not in PRESETS:
        raise ConfigError(f"{path}: preset {d.get('preset')!r} is not one of {', '.join(PRESETS)}")
    return d


def apply_config_file(config: RunConfig, d: dict[str, Any]) -> RunConfig:
    """Apply a config file's preset, then its ``model`` / ``train`` switches, to ``config``
    (in place; the combination is validated) and return it."""
    apply_preset(config, d.get("preset", "paper"))
    for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
        values = d.get(section) or {}
        _check_keys(cls, values)
        for key, value in values.items():
            setattr(getattr(config, section), key, tuple(value) if isinstance(value, list) else value)
    config.model.validate()
    config.train.__post_init__()
    return config
