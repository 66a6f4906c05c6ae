"""Configs validate themselves from one constraints table, presets set their whole definition,
and the config hash is a diff from the defaults with pinned identities."""

from __future__ import annotations

import dataclasses

import pytest

from selfcross.cli import build_parser
from selfcross.config import (
    HASHED_AT_EVERY_VALUE,
    PRESETS,
    Interval,
    ModelConfig,
    OneOf,
    RunConfig,
    TrainConfig,
    apply_preset,
    choices,
    config_hash,
    preset_values,
)
from selfcross.errors import ConfigError

#: Run identities of the presets (default model, device cpu). paper and improved are the
#: identities of every store written so far; a change here means every stored run of that
#: preset is rerun.
GOLDEN = {
    "paper": "eead76384ce07b2ba083462683e687b772b264a0eed7c4434608624ac5408ddc",
    "improved": "3e91d0bd03f25e036bd0b86bb8d1042f46f66709c63d5d393182d713c9ddea8a",
    "strong": "1759d65f48e2fcf0aa30f7b36b1f84113ddee8ec706bcc91c398d3551f62a5d1",
}


def preset_config(preset: str) -> RunConfig:
    cfg = apply_preset(RunConfig(), preset)
    cfg.train.device = "cpu"
    return cfg


# ----------------------------------------------------------------------------- hash
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_hash_is_pinned(preset):
    got = config_hash(preset_config(preset).to_dict())
    assert got == GOLDEN[preset], f"config hash of {preset!r} changed: new value {got}"


def _fields_hashed_only_off_default() -> list[tuple[str, str]]:
    excluded = {"shapes", "n_classes", "vocab_size", "num_threads", "eval_batch_size"}
    return [
        (section, f.name)
        for section, cls in (("model", ModelConfig), ("train", TrainConfig))
        for f in dataclasses.fields(cls)
        if f.name not in HASHED_AT_EVERY_VALUE[section] and f.name not in excluded
    ]


def _off_default(section: str, key: str, value: object) -> object:
    """Another allowed value of a field (from its constraint, else a nudge)."""
    cls = ModelConfig if section == "model" else TrainConfig
    constraint = cls.constraints.get(key)
    if isinstance(constraint, OneOf):
        return next(c for c in constraint.choices if c != value)
    if isinstance(value, bool):
        return not value
    return value + (0.5 if isinstance(constraint, Interval) and constraint.high == 1.0 else 1)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(("section", "key"), _fields_hashed_only_off_default())
def test_a_field_at_its_default_hashes_like_a_config_written_before_it_existed(preset, section, key):
    cfg = preset_config(preset).to_dict()
    value = cfg[section][key]
    default = getattr(ModelConfig() if section == "model" else TrainConfig(), key)
    if value == default:
        older = {**cfg, section: {k: v for k, v in cfg[section].items() if k != key}}
        assert config_hash(older) == config_hash(cfg)
    changed = {**cfg, section: {**cfg[section], key: _off_default(section, key, value)}}
    assert config_hash(changed) != config_hash(cfg)


def test_every_field_outside_the_frozen_set_is_covered_by_the_diff():
    # the frozen set only ever names fields that exist (a typo would silently hash nothing)
    for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
        assert HASHED_AT_EVERY_VALUE[section] <= {f.name for f in dataclasses.fields(cls)}


# ----------------------------------------------------------------------------- presets
def test_paper_after_strong_is_the_paper_again():
    cfg = RunConfig(model=ModelConfig(kind="cross", modalities=("audio", "text")))
    apply_preset(cfg, "strong")
    apply_preset(cfg, "paper")
    fresh = apply_preset(RunConfig(model=ModelConfig(kind="cross", modalities=("audio", "text"))), "paper")
    assert cfg.to_dict() == fresh.to_dict()
    assert config_hash(cfg.to_dict()) == config_hash(fresh.to_dict())


@pytest.mark.parametrize("first", PRESETS)
@pytest.mark.parametrize("second", PRESETS)
def test_a_preset_applied_last_decides_every_preset_field(first, second):
    twice = apply_preset(apply_preset(RunConfig(), first), second)
    assert twice.to_dict() == apply_preset(RunConfig(), second).to_dict()


def test_preset_values_list_the_same_fields_for_every_preset():
    keys = {p: {s: set(v) for s, v in preset_values(p).items()} for p in PRESETS}
    assert keys["paper"] == keys["improved"] == keys["strong"]
    assert preset_values("paper")["train"]["optimizer"] == "adam"
    assert preset_values("strong")["train"]["optimizer"] == "adamw"
    assert preset_values("improved")["model"]["time_mixing"] == "conv"


def test_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError, match="preset 'best' is not one of paper, improved, strong"):
        apply_preset(RunConfig(), "best")
    with pytest.raises(ConfigError, match="preset"):
        RunConfig(preset="best")


# ----------------------------------------------------------------------------- constraints
def _bad_value(constraint: OneOf | Interval) -> object:
    if isinstance(constraint, OneOf):
        return "no-such-choice"
    return constraint.low - 1 if constraint.high is None else constraint.high


@pytest.mark.parametrize(
    ("cls", "name"),
    [(cls, name) for cls in (ModelConfig, TrainConfig) for name in cls.constraints],
)
def test_every_constraint_refuses_a_value_outside_it_naming_the_field(cls, name):
    bad = _bad_value(cls.constraints[name])
    with pytest.raises(ConfigError, match=name):
        cls(**{name: bad})


def test_from_dict_checks_the_same_table():
    d = RunConfig().to_dict()
    d["train"]["schedule"] = "linear"
    with pytest.raises(ConfigError, match="schedule 'linear' is not one of plateau, cosine, none"):
        RunConfig.from_dict(d)


@pytest.mark.parametrize(
    ("flag", "cls", "name"),
    [("--model", ModelConfig, "kind"), ("--preset", RunConfig, "preset"), ("--dtype", TrainConfig, "dtype"),
     ("--kernels", TrainConfig, "kernels"), ("--task", TrainConfig, "task")],
)
def test_train_cli_accepts_exactly_the_table_choices(flag, cls, name, capsys):
    parser = build_parser()
    base = ["train", "--data", "d", "--out", "o"]
    for value in choices(cls, name):
        assert getattr(parser.parse_args([*base, flag, value]), flag[2:]) == value
    with pytest.raises(SystemExit):
        parser.parse_args([*base, flag, "no-such-choice"])
    assert "invalid choice" in capsys.readouterr().err
