"""Config loading: ``_base_`` inheritance, overrides, and one-line errors for bad files."""

from __future__ import annotations

import pytest

from minddrive.config import load_config, parse_cfg_options, require_keys
from minddrive.errors import UserError


def test_child_merges_into_its_base(fixtures_dir):
    cfg = load_config(fixtures_dir / "configs" / "child.py")
    assert cfg.model == {"type": "ToyModel", "hidden": 32, "layers": [4], "head": {"type": "Linear", "out": 3}}
    assert cfg.optimizer == {"type": "AdamW", "lr": 5e-4, "weight_decay": 0.0}  # nested merge keeps siblings
    assert cfg.train.epochs == 2 and cfg.seed == 0 and cfg.work_dir == "work_dirs/toy"


def test_delete_replaces_an_inherited_dict(fixtures_dir):
    cfg = load_config(fixtures_dir / "configs" / "replace_child.py")
    assert cfg.optimizer == {"type": "SGD", "lr": 0.1}


def test_cfg_options_override_dotted_keys(fixtures_dir):
    cfg = load_config(fixtures_dir / "configs" / "child.py",
                      ["model.head.out=7", "optimizer.lr=0.01", "model.layers=[1,2,3]", "work_dir=/tmp/run"])
    assert cfg.model.head.out == 7 and cfg.optimizer.lr == 0.01 and cfg.model.layers == [1, 2, 3]
    assert cfg.work_dir == "/tmp/run" and cfg.model.hidden == 32
    as_dict = load_config(fixtures_dir / "configs" / "child.py", {"seed": 3})
    assert as_dict.seed == 3


def test_project_runtime_base_is_inheritable(fixtures_dir):
    cfg = load_config(fixtures_dir / "configs" / "runtime_child.py", ["log_config.interval=5"])
    assert cfg.seed == 7 and cfg.deterministic is False and cfg.work_dir == "work_dirs/default"
    assert cfg.log_config == {"interval": 5, "tensorboard": True, "progress_bar": True}
    assert cfg.checkpoint_config.max_keep == 3


def test_parse_cfg_options_types():
    assert parse_cfg_options(["a.b=1", "c=[1,2]", "d=x", "e=1.5"]) == {"a.b": 1, "c": [1, 2], "d": "x", "e": 1.5}
    with pytest.raises(UserError, match="expected KEY=VALUE, got 'novalue'"):
        parse_cfg_options(["novalue"])


@pytest.mark.parametrize("name, message", [
    ("no_such_config.py", r"no_such_config.py: config file not found"),
    ("bad_syntax.py", r"bad_syntax.py:3: syntax error in config"),
    ("missing_base.py", r"missing_base.py: a _base_ file it inherits from is missing: .*no_such_base.py"),
])
def test_bad_configs_give_one_line_user_errors(fixtures_dir, name, message):
    with pytest.raises(UserError, match=message) as info:
        load_config(fixtures_dir / "configs" / name)
    assert "\n" not in str(info.value)


def test_require_keys_names_the_first_missing_key(fixtures_dir):
    cfg = load_config(fixtures_dir / "configs" / "child.py")
    require_keys(cfg.model, ["head.out", "hidden"], where="child.py model")
    with pytest.raises(UserError, match=r"^child.py model: missing key 'head.bias'$"):
        require_keys(cfg.model, ["hidden", "head.bias"], where="child.py model")


def test_require_keys_accepts_a_loaded_config(fixtures_dir):
    cfg = load_config(fixtures_dir / "configs" / "child.py")
    require_keys(cfg, ["model.head.out", "optimizer.lr"], where="child.py")
