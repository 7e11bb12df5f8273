"""``minddrive prepare-data``: damaged frames are reported with their path, skipped and counted."""

from __future__ import annotations

import gzip
import json

import numpy as np

from minddrive.cli import main
from minddrive.data.infos import build_info_index, load_info_index

CLIP = "v1/HardBreakRoute_Town01_Route30_Weather3"


def test_corrupt_annotation_and_missing_image_are_reported_and_skipped(b2d_copy, tmp_path, capsys):
    clip = b2d_copy / CLIP
    (clip / "anno" / "00010.json.gz").write_bytes(gzip.compress(b'{"x": 1, "bounding_')[:-6])  # truncated gzip
    (clip / "camera" / "rgb_back" / "00004.jpg").unlink()
    jpeg = clip / "camera" / "rgb_front" / "00006.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:-10])  # download cut short: no end-of-image marker

    # Valid gzip JSON, but no usable ego pose (no world2ego, GNSS x missing): not an index entry either.
    anno = json.loads(gzip.decompress((clip / "anno" / "00013.json.gz").read_bytes()))
    del anno["bounding_boxes"][0]["world2ego"], anno["bounding_boxes"][0]["location"]
    anno["x"] = None
    (clip / "anno" / "00013.json.gz").write_bytes(gzip.compress(json.dumps(anno).encode()))

    vqa = b2d_copy / "vqa" / "train" / CLIP.split("/")[1] / "00001.json"
    vqa.write_text('[[{"from": "human", "value": "Q"}]]')  # a turn without its answer

    code = main(["prepare-data", "--root", str(b2d_copy), "--split-file", str(b2d_copy / "split.json"),
                 "--out", str(tmp_path / "infos"), "--vqa-root", str(b2d_copy / "vqa"), "--workers", "1",
                 "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert f"skipped {clip / 'anno' / '00010.json.gz'}: unreadable annotation" in out
    assert f"skipped {clip / 'camera' / 'rgb_back' / '00004.jpg'}: image missing" in out
    assert f"skipped {jpeg}: truncated JPEG" in out
    assert f"skipped {clip / 'anno' / '00013.json.gz'}: ego pose: no usable world2ego" in out
    assert f"skipped {vqa}: malformed Chat-B2D VQA" in out
    assert "skipped 5 frame(s); indexed 11 train and 6 val frames" in out

    infos, meta = load_info_index(tmp_path / "infos" / "b2d_infos_train.pkl")
    assert [i["frame"] for i in infos] == [0, 2, 3, 5, 7, 8, 9, 11, 12, 14, 15]
    assert len(meta["skipped"]) == 5
    # Frame 10 cannot be a target either: frame 0's second waypoint is masked, not guessed.
    np.testing.assert_array_equal(infos[0]["ego_fut_mask"], [1, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(infos[0]["ego_fut_traj"][1], [0, 0])
    # Frame 4 lost an image, not its annotation: it is no sample, but frame 9 still sees it as history
    # (ego at t=0.4 s is 1.325 m behind and 0.1 m left of the ego at t=0.9 s).
    frame9 = infos[[i["frame"] for i in infos].index(9)]
    np.testing.assert_allclose(frame9["ego_history"][0], [-1.325, -0.1], atol=1e-5)


def test_parallel_and_serial_indexes_are_identical(b2d_root, b2d_index, train_infos, tmp_path):
    summary = build_info_index(b2d_root, b2d_root / "split.json", tmp_path / "a", vqa_root=str(b2d_root / "vqa"),
                               workers=2, progress=False, log=lambda *_: None)
    assert (summary["train"], summary["val"], summary["clips"]) == (16, 6, 2)
    parallel, _ = load_info_index(tmp_path / "a" / "b2d_infos_train.pkl")
    assert len(parallel) == len(train_infos)
    for x, y in zip(parallel, train_infos):
        assert (x["frame"], x["speed_action"], x["label_source"]) == (y["frame"], y["speed_action"], y["label_source"])
        assert x["frame"] == y["frame"]
        np.testing.assert_array_equal(x["ego_fut_traj"], y["ego_fut_traj"])
        np.testing.assert_array_equal(x["agent_boxes"], y["agent_boxes"])


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["prepare-data", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minddrive prepare-data: error: ") and "data root not found" in err and "\n" not in err
    (tmp_path / "empty").mkdir()
    assert main(["prepare-data", "--root", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no clips found" in capsys.readouterr().err


def test_reads_the_real_zoo_split_file(release_dir):
    from minddrive.data.infos import read_split_file

    names = read_split_file(release_dir / "bench2drive_base_train_val_split.json")
    assert len(names) == 50 and "HighwayExit_Town06_Route312_Weather0" in names
    assert all("/" not in name for name in names)  # "v1/" prefix dropped: clips match by folder name
