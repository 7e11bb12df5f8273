"""The RL verbs report user errors in one line naming the file/key."""

from minddrive.cli import main


def test_decouple_of_a_folder_without_rollouts_is_one_line(tmp_path, capsys):
    assert main(["decouple", str(tmp_path), "--out", str(tmp_path / "dec")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a rollout folder" in err and str(tmp_path) in err


def test_unknown_ppo_hyper_parameter_names_the_key(tmp_path, capsys):
    cfg = tmp_path / "c.py"
    cfg.write_text("model = dict(type='StateFeaturePolicy')\nrollout = dict()\nppo = dict(epoch=3)\n")
    index = tmp_path / "i.pkl"
    index.write_bytes(b"")
    assert main(["ppo", str(cfg), "--ckpt", str(tmp_path), "--index", str(index)]) == 2
    assert f"{cfg}: ppo.epoch: unknown setting; expected one of: batch_size," in capsys.readouterr().err


def test_rl_loop_needs_an_existing_checkpoint(tmp_path, capsys):
    cfg = tmp_path / "c.py"
    cfg.write_text("model = dict(type='StateFeaturePolicy')\nrollout = dict()\n")
    assert main(["rl-loop", str(cfg), "--ckpt", str(tmp_path / "missing"), "--iterations", "1"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
