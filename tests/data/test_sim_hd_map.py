"""The simulator writes each clip's road network as a Bench2Drive HD map, and prepare-data reads it back.

A tiny ``sim-data`` run (the expert driving two routes), then ``prepare-data --map-root OUT/maps`` on it: the
map files are in ``tools/gen_hdmap.py``'s layout, the clips' town field names their map, and a frame's
``map_boundaries`` are the network's own solid lines, lifted onto the terrain, in that frame's ego frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from minddrive.cli import main
from minddrive.data import bench2drive as b2d
from minddrive.data.infos import MAP_RADIUS, load_info_index
from minddrive.data.sim_vqa import frame_vqa
from minddrive.sim.hdmap import map_name
from minddrive.sim.scenarios import build_scenario
from minddrive.sim.terrain import Terrain
from minddrive.sim.writer import MAPS_DIR, write_dataset

SEED = 4


@pytest.fixture(scope="module")
def sim_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("simmap")
    clips = write_dataset(root, num_routes=2, seed=SEED, vqa_root=root / "vqa", image_size=(36, 64), max_frames=8,
                          frame_vqa=frame_vqa)
    rc = main(["prepare-data", "--root", str(root), "--split-file", str(root / "split.json"), "--out",
               str(root / "infos"), "--vqa-root", str(root / "vqa"), "--map-root", str(root / MAPS_DIR),
               "--workers", "0", "--no-progress"])
    assert rc == 0
    infos = {}
    for split in ("train", "val"):
        for info in load_info_index(root / "infos" / f"b2d_infos_{split}.pkl")[0]:
            infos.setdefault(info["clip_name"], []).append(info)
    return root, clips, infos


def _route_world(index: int):
    """The world route ``index`` of the dataset drove, rebuilt from its seed and scenario (as the env does)."""
    from minddrive.sim.writer import default_scenarios

    seed = SEED * 100_000 + index
    return seed, build_scenario(default_scenarios()[index % len(default_scenarios())], seed)


def test_one_map_per_network_in_the_shipped_layout(sim_dataset):
    root, clips, _ = sim_dataset
    names = sorted(p.name for p in (root / MAPS_DIR).iterdir())
    towns = [b2d.parse_clip_name(clip.name).town for clip in clips]
    assert names == sorted(f"{town}_HD_map.npz" for town in towns)
    for index, town in enumerate(towns):
        seed, world = _route_world(index)
        assert town == map_name(world.town, seed) == f"{world.town}_seed{seed}"
        with np.load(root / MAPS_DIR / f"{town}_HD_map.npz", allow_pickle=True) as data:
            arr = data["arr"]
        assert arr.dtype == object and arr.ndim == 2 and arr.shape[1] == 2   # (road_id, road) pairs
        roads = dict(arr)                                                      # as Bench2Drive-Zoo rebuilds it
        arms = len(world.network.arms)
        connectors = sum(lane.in_junction for lane in world.network.lanes.values())
        assert sorted(roads) == list(range(1, arms + 1)) + list(range(100, 100 + connectors))
        lanes = world.network.arms[0].lanes
        assert sorted(k for k in roads[1] if isinstance(k, int)) == list(range(-lanes, 0)) + list(range(1, lanes + 1))
        left, right, centre = roads[1][-1]
        assert (left["Type"], left["Color"], right["Type"], centre["Type"]) == (
            "Solid", "Yellow", "Solid" if lanes == 1 else "Broken", "Center")
        (x, y, z), (roll, pitch, yaw), in_junction = centre["Points"][10]
        terrain = Terrain(world.town)
        assert z == pytest.approx(terrain.height(x, y)) and z > 10.0 and in_junction is False
        assert (roll, pitch) == pytest.approx(terrain.attitude(x, y, np.radians(yaw))[:0:-1])
        np.testing.assert_allclose([x, y], world.network.lanes[world.network.arms[0].outgoing_lanes[0]].points[10])
        assert roads[100][-1][2]["TopologyType"] == "Junction" and roads[100][-1][0]["Type"] == "NONE"
        volumes = [v for road in roads.values() for v in road.get("Trigger_Volumes", ())]
        assert len(volumes) == len(world.lights) + len(world.stop_signs)


def test_prepare_data_boundaries_are_the_networks_solid_lines_in_the_ego_frame(sim_dataset):
    root, clips, infos = sim_dataset
    seed, world = _route_world(0)
    info = infos[clips[0].name][5]
    assert info["town"] == map_name(world.town, seed)
    boundaries, mask = info["map_boundaries"], info["map_mask"].astype(bool)
    assert mask.sum() > 20
    got = boundaries[mask]                                                     # (M, 2) ego-frame points
    # Independently: the network's solid markings on the arms (junction kerbs are unpainted, as in CARLA),
    # every 0.1 m, lifted onto the town's terrain, through the frame's own world2ego.
    terrain = Terrain(world.town)
    anno = b2d.read_annotation(clips[0] / "anno" / f"{info['frame']:05d}.json.gz")
    world2ego = np.asarray(anno["bounding_boxes"][0]["world2ego"])
    kerbs = world.network.road_edges[2 * len(world.network.arms):]
    expected = []
    for marking in world.network.lane_markings:
        if marking.type in ("Solid", "Center") and not any(marking.points is kerb for kerb in kerbs):
            for a, b in zip(marking.points[:-1], marking.points[1:]):
                t = np.linspace(0.0, 1.0, 11)[:, None]
                xy = a + t * (b - a)
                expected.append(np.column_stack([xy, terrain.height(xy[:, 0], xy[:, 1])]))
    expected = b2d.to_ego(world2ego, np.concatenate(expected))
    near = expected[np.linalg.norm(expected, axis=1) < MAP_RADIUS - 1.0]
    distance = np.linalg.norm(got[:, None] - expected[None], axis=2).min(1)
    assert distance.max() < 0.05                       # every boundary point lies on a solid line
    coverage = np.linalg.norm(near[:, None] - got[None], axis=2).min(1)
    assert np.percentile(coverage, 95) < 1.1            # and the solid lines nearby are all there (2 m spacing)
    # The ego drives in the middle of a 3.5 m lane of its approach: abeam, the solid lines are the road's
    # centre line on its left and the road's edge on its right, half-lanes away, n lanes apart in all.
    abeam = got[np.abs(got[:, 0]) < 1.5]
    left, right = -abeam[abeam[:, 1] < 0, 1].max(), abeam[abeam[:, 1] > 0, 1].min()
    lanes = world.network.arms[0].lanes
    assert left + right == pytest.approx(lanes * 3.5, abs=0.05)
    assert (left / 3.5 - 0.5) == pytest.approx(round(left / 3.5 - 0.5), abs=0.05)
    # Without the map the same frame has no boundaries: they come from the map, not from elsewhere.
    rc = main(["prepare-data", "--root", str(root), "--out", str(root / "nomap"), "--workers", "0", "--no-progress"])
    assert rc == 0
    plain = [i for i in load_info_index(root / "nomap" / "b2d_infos_train.pkl")[0] if i["frame"] == info["frame"]]
    assert all(i["map_boundaries"].shape[0] == 0 for i in plain)
