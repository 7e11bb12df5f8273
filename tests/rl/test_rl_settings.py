"""RL settings (config keys ``rl`` and ``ppo``): one default each, and a wrong type or range is one line
naming the config file, the key, the value and what was expected."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from minddrive.cli import main
from minddrive.config import load_config
from minddrive.errors import UserError
from minddrive.rl.decouple import decouple
from minddrive.rl.ppo import PPOHyperParams, ppo_settings
from minddrive.rl.settings import ReturnParams

CONFIGS = Path(__file__).resolve().parents[2] / "adzoo" / "minddrive" / "configs"


def test_upstream_defaults_are_written_once_and_the_base_rl_config_states_them():
    assert (ReturnParams().gamma, ReturnParams().gae_lambda) == (0.99, 1.0)
    defaults = inspect.signature(decouple).parameters
    assert (defaults["gamma"].default, defaults["gae_lambda"].default) == (0.99, 1.0)
    parity = load_config(CONFIGS / "minddrive_rl_ppo_train_parity44.py")  # upstream's setting throughout
    assert ReturnParams.from_config(parity.rl) == ReturnParams()
    hp = ppo_settings(parity)
    assert (hp.clip_coef, hp.epochs, hp.batch_size, hp.learning_rate, hp.kl_coef) == (0.2, 10, 32, 8e-6, 0.5)
    assert (hp.weight_decay, hp.max_grad_norm, hp.entropy_coef, hp.value_coef) == (1e-5, 35.0, 0.0, 0.5)
    tiny = load_config(CONFIGS / "minddrive_tiny_rl_ppo_train.py")
    assert ReturnParams.from_config(tiny.rl) == ReturnParams(gamma=0.9, gae_lambda=0.95)


def test_every_shipped_config_passes_the_checks():
    checked = 0
    for path in sorted(CONFIGS.glob("*.py")):
        cfg = load_config(path)
        if "ppo" in cfg:
            ReturnParams.from_config(cfg.get("rl"), str(path))
            # upstream freezes the value LoRA; the tiny demo trains it (a named deviation)
            expected = (("decision_expert", "value_expert", "value_head") if "tiny" in path.name
                        else ("decision_expert", "value_head"))
            assert ppo_settings(cfg).trainable == expected, path.name
            checked += 1
    assert checked == 8  # 3 rollout + 5 PPO configs


@pytest.mark.parametrize("section, key, value, expected", [
    ("rl", "gamma", 1.5, "a number in [0, 1]"),
    ("rl", "gae_lambda", -0.1, "a number in [0, 1]"),
    ("rl", "gamma", "0.9", "a number in [0, 1]"),
    ("ppo", "epochs", 2.5, "an integer >= 1"),
    ("ppo", "epochs", True, "an integer >= 1"),
    ("ppo", "batch_size", 0, "an integer >= 1"),
    ("ppo", "clip_coef", 0.0, "a number > 0"),
    ("ppo", "learning_rate", float("nan"), "a number >= 0"),
    ("ppo", "normalize_advantages", "yes", "true or false"),
    ("ppo", "target_kl", -0.01, "None or a number > 0"),
    ("ppo", "micro_batch_size", 0, "None or an integer >= 1"),
    ("ppo", "trainable", "decision_expert", "a list of names"),
])
def test_a_wrong_value_names_file_key_value_and_what_was_expected(section, key, value, expected):
    read = ReturnParams.from_config if section == "rl" else PPOHyperParams.from_config
    with pytest.raises(UserError) as error:
        read({key: value}, "exp.py")
    assert str(error.value) == f"exp.py: {section}.{key} = {value!r}: expected {expected}"


def test_accepted_values_keep_their_meaning():
    hp = PPOHyperParams.from_config(dict(learning_rate=0, target_kl=None, trainable=["value_head"], epochs=3))
    assert (hp.learning_rate, hp.target_kl, hp.trainable, hp.epochs) == (0, None, ("value_head",), 3)
    assert ReturnParams.from_config(dict(gamma=1)) == ReturnParams(gamma=1, gae_lambda=1.0)
    with pytest.raises(UserError, match=r"^exp.py: rl.lambda: unknown setting; expected one of: gae_lambda, gamma$"):
        ReturnParams.from_config(dict(gamma=0.9, **{"lambda": 0.9}), "exp.py")


def write_config(tmp_path: Path, ppo: str, rl: str = "") -> Path:
    cfg = tmp_path / "exp.py"
    cfg.write_text(f"model = dict(type='StateFeaturePolicy')\nrollout = dict()\nrl_routes = dict(count=1)\n"
                   f"rl = dict({rl})\nppo = dict({ppo})\n")
    return cfg


def test_rl_loop_checks_the_settings_before_any_work(tmp_path, capsys):
    cfg = write_config(tmp_path, "clip_coef=-0.2")
    assert main(["rl-loop", str(cfg), "--ckpt", str(tmp_path), "--work-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == f"minddrive rl-loop: error: {cfg}: ppo.clip_coef = -0.2: expected a number > 0\n"
    assert not (tmp_path / "run").exists()  # failed before the baseline evaluation created anything
    cfg = write_config(tmp_path, "", rl="gamma=2")
    assert main(["rl-loop", str(cfg), "--ckpt", str(tmp_path), "--work-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"minddrive rl-loop: error: {cfg}: rl.gamma = 2: expected a number in [0, 1]\n"


def test_decouple_checks_the_discount_from_the_command_line_and_the_config(tmp_path, capsys):
    assert main(["decouple", str(tmp_path), "--out", str(tmp_path / "dec"), "--gamma", "1.2"]) == 2
    assert capsys.readouterr().err == "minddrive decouple: error: decouple: rl.gamma = 1.2: expected a number in [0, 1]\n"
    cfg = write_config(tmp_path, "", rl="gae_lambda=None")
    assert main(["decouple", str(tmp_path), "--out", str(tmp_path / "dec"), "--config", str(cfg)]) == 2
    assert capsys.readouterr().err == (f"minddrive decouple: error: {cfg}: rl.gae_lambda = None: "
                                       "expected a number in [0, 1]\n")
