"""`harkit config`: a saved data folder that commands find, below --data-dir and HARKIT_DATA_DIR."""

import tomllib

import pytest
from typer.testing import CliRunner

from harkit import HarkitError, userconfig
from harkit.cli import app
from harkit.datasets import default_data_dir, get_dataset, locate

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})


def test_config_set_writes_under_xdg_config_home(tmp_path, hapt_dir):
    result = invoke("config", "set", "data-dir", hapt_dir)
    assert result.exit_code == 0, result.output
    path = tmp_path / "config" / "harkit" / "config.toml"
    assert userconfig.config_path() == path
    assert tomllib.loads(path.read_text()) == {"data-dir": str(hapt_dir.resolve())}
    shown = invoke("config", "show")
    assert str(path) in shown.output and str(hapt_dir.resolve()) in shown.output


def test_relative_folder_is_saved_absolute(tmp_path, monkeypatch, hapt_dir):
    monkeypatch.chdir(hapt_dir.parent)
    userconfig.set_value("data-dir", hapt_dir.name)
    monkeypatch.chdir(tmp_path / "config")  # another working directory still finds it
    assert userconfig.configured("data-dir") == hapt_dir.resolve()


def test_precedence_flag_env_config_cache(tmp_path, monkeypatch, hapt_dir):
    userconfig.set_value("data-dir", str(hapt_dir))
    # conftest sets HARKIT_DATA_DIR: the environment variable wins over the file
    assert default_data_dir() == tmp_path / "no-data"
    monkeypatch.delenv("HARKIT_DATA_DIR")
    assert default_data_dir() == hapt_dir.resolve()
    assert userconfig.resolve_data_dir("elsewhere") == (userconfig.Path("elsewhere"), "--data-dir")
    userconfig.unset_value("data-dir")
    assert "harkit" in str(default_data_dir()) and default_data_dir() != hapt_dir.resolve()


def test_saved_data_dir_is_found_without_flag(monkeypatch, hapt_dir):
    monkeypatch.delenv("HARKIT_DATA_DIR")
    with pytest.raises(HarkitError, match="not found"):
        locate(get_dataset("hapt"), allow_download=False)
    invoke("config", "set", "data-dir", hapt_dir)
    root, _ = locate(get_dataset("hapt"), allow_download=False)
    assert root.is_relative_to(hapt_dir.resolve())
    result = invoke("prepare", "hapt", "--window", 64, "--val-fraction", 0, "--no-download")
    assert result.exit_code == 0, result.output


def test_mistakes_are_harkit_errors(tmp_path):
    result = invoke("config", "set", "data-dri", tmp_path)
    assert result.exit_code == 2 and "did you mean 'data-dir'" in result.output
    result = invoke("config", "set", "data-dir", tmp_path / "missing")
    assert result.exit_code == 2 and "is not a folder" in result.output
    userconfig.config_path().parent.mkdir(parents=True)
    userconfig.config_path().write_text("data-dir = [")
    with pytest.raises(HarkitError, match="not valid TOML"):
        userconfig.load()
