"""Ray is optional: without it the local executor and the package work, and asking for Ray says how.

These tests need no Ray (they run in every venv); the Ray executor itself is tested in
``test_ray_executor.py`` where Ray is installed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from selfcross.cli import main
from selfcross.errors import ConfigError
from selfcross.experiments.executors import make_executor


def test_ray_executor_without_ray_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "selfcross.experiments.ray_executor", raising=False)
    with pytest.raises(ConfigError, match=r"selfcross\[ray\]"):
        make_executor("ray", workers=1)


def test_experiments_package_does_not_import_ray():
    code = ("import sys, selfcross.experiments, selfcross.experiments.grid, selfcross.cli.experiments; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


RAY_FLAGS = [["--cpus-per-run", "1"], ["--gpus-per-run", "0.5"], ["--ray-address", "auto"]]


@pytest.mark.parametrize("flag", RAY_FLAGS)
def test_ray_flags_need_executor_ray(flag, tmp_path, capsys):
    code = main(["grid", "--data", str(tmp_path / "nowhere"), "--db", str(tmp_path / "r.sqlite"), *flag])
    assert code == 2
    assert "need --executor ray" in capsys.readouterr().err
    assert not (tmp_path / "r.sqlite").exists()


def test_unknown_executor_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["grid", "--data", "x", "--executor", "slurm"])
    assert "invalid choice" in capsys.readouterr().err
