"""Camera rig calibration and the embedded renderer (cameras + BEV) on a hand-made scene."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minddrive.constants import CAMERA_NAMES
import cv2

from minddrive.sim.bev import GRASS, LIGHT_RGB, map_raster, render_bev, world_to_ego
from minddrive.sim.scene import ActorState
from minddrive.sim.sensors import CameraRenderer, actor_color, camera_calibration, carla_matrix, render_cameras
from minddrive.sim.viewer import example_scene

FRONT, BACK = CAMERA_NAMES.index("CAM_FRONT"), CAMERA_NAMES.index("CAM_BACK")


def project(lidar2img: np.ndarray, point_ego) -> tuple[float, float, float]:
    p = lidar2img @ np.array([*point_ego, 1.0])
    return p[0] / p[2], p[1] / p[2], p[2]


def test_calibration_shapes_and_intrinsics():
    calib = camera_calibration(448, 256)
    assert calib["cam_intrinsic"].shape == (6, 3, 3) and calib["cam_intrinsic"].dtype == np.float32
    assert calib["cam2ego"].shape == (6, 4, 4) and calib["lidar2img"].shape == (6, 4, 4)
    k_front = calib["cam_intrinsic"][FRONT]
    assert k_front[0, 0] == pytest.approx(448 / (2 * math.tan(math.radians(35))), rel=1e-6)
    assert (k_front[0, 2], k_front[1, 2]) == (224.0, 128.0)
    # Bench2Drive size: the published focal lengths (docs/bench2drive.md#camera-rig).
    big = camera_calibration(1600, 900)["cam_intrinsic"]
    assert big[FRONT, 0, 0] == pytest.approx(1142.518, abs=1e-3)
    assert big[BACK, 0, 0] == pytest.approx(560.166, abs=1e-3)
    # cam2ego is CARLA's get_matrix of the mounting: CAM_FRONT_LEFT looks 55 deg to the left.
    c2e = calib["cam2ego"][CAMERA_NAMES.index("CAM_FRONT_LEFT")]
    assert np.allclose(c2e[:3, 3], [0.27, -0.55, 1.60])
    assert np.allclose(c2e[:2, 0], [math.cos(math.radians(-55)), math.sin(math.radians(-55))], atol=1e-6)


def test_point_ahead_projects_to_front_centre_column():
    calib = camera_calibration(448, 256)
    u, v, depth = project(calib["lidar2img"][FRONT], (10.8, 0.0, 1.6))   # 10 m in front of the lens, lens height
    assert (u, v, depth) == pytest.approx((224.0, 128.0, 10.0), abs=1e-3)
    u, v, _ = project(calib["lidar2img"][FRONT], (10.8, 0.0, 0.0))       # on the ground: below the centre
    assert u == pytest.approx(224.0, abs=1e-3) and v > 128.0
    u, _, _ = project(calib["lidar2img"][FRONT], (10.8, 2.0, 1.6))       # to the right (y right) -> larger u
    assert u > 224.0
    u, v, depth = project(calib["lidar2img"][BACK], (-12.0, 0.0, 1.6))   # behind: centre of CAM_BACK
    assert (u, v, depth) == pytest.approx((224.0, 128.0, 10.0), abs=1e-3)


def test_lidar2img_is_k_swap_inverse_cam2ego():
    calib = camera_calibration(448, 256)
    rng = np.random.default_rng(0)
    for cam in range(6):
        point = rng.uniform(-20, 20, size=3)
        cam_ue = np.linalg.inv(calib["cam2ego"][cam].astype(np.float64)) @ np.array([*point, 1.0])
        std = np.array([cam_ue[1], -cam_ue[2], cam_ue[0]])
        expected = calib["cam_intrinsic"][cam].astype(np.float64) @ std
        got = calib["lidar2img"][cam].astype(np.float64) @ np.array([*point, 1.0])
        assert np.allclose(got[:3], expected, rtol=1e-5, atol=1e-3)


def test_carla_matrix_matches_yaw_rotation():
    m = carla_matrix(1.0, 2.0, 3.0, 0.0, 0.0, 90.0)
    assert np.allclose(m @ [1, 0, 0, 1], [1.0, 3.0, 3.0, 1.0])  # forward axis of a 90 deg yaw is +y


def _only(scene, *actors):
    scene.actors = list(actors)
    scene.traffic_lights, scene.stop_signs = [], []
    return scene


def test_cameras_draw_sky_road_and_lane_colours():
    scene = _only(example_scene())
    images = render_cameras(scene, 448, 256)
    assert images.shape == (6, 256, 448, 3) and images.dtype == np.uint8
    front = images[FRONT].astype(int)
    assert front[5, 224, 2] > front[5, 224, 0] + 60            # sky: blue
    # Ego in the right lane at y=1.75; the yellow double centre line at y=0 is 1.75 m to its left.
    calib = camera_calibration(448, 256)
    u, v, _ = project(calib["lidar2img"][FRONT], (8.0, -1.75 + 0.0, 0.0))
    row = front[int(round(v))]
    col = int(round(u))
    window = row[col - 6:col + 7]
    yellow = (window[:, 0] > 150) & (window[:, 1] > 120) & (window[:, 2] < 110)
    assert yellow.any(), window
    u, v, _ = project(calib["lidar2img"][FRONT], (8.0, 0.0, 0.0))  # our lane centre: asphalt grey
    r, g, b = front[int(round(v)), int(round(u))]
    assert abs(r - g) < 12 and abs(g - b) < 12 and 50 < r < 100
    u, v, _ = project(calib["lidar2img"][FRONT], (15.0, 7.0, 0.0))  # off the road: grass green
    r, g, b = front[int(round(v)), int(round(u))]
    assert g > r + 10 and g > b + 20


def test_box_and_traffic_light_colours():
    scene = example_scene(light_state=2)
    cone = ActorState(99, "prop", "static.prop.constructioncone", scene.ego.x + 8.0, scene.ego.y, 0.0, 0.0,
                      (0.5, 0.5, 0.5))
    scene = _only(scene, cone)
    calib = camera_calibration(448, 256)
    front = render_cameras(scene, 448, 256)[FRONT].astype(int)
    # The centre of the cone's near face (x = 7.5 m ahead of the ego, 0.5 m up).
    u, v, _ = project(calib["lidar2img"][FRONT], (7.5, 0.0, 0.5))
    r, g, b = front[int(round(v)), int(round(u))]
    assert r > 150 and 60 < g < 130 and b < 40  # shaded orange
    # A green traffic light head straight ahead, 20 m away, lamp at 3.85 m.
    light = example_scene(light_state=2).traffic_lights[0]
    light.x, light.y = scene.ego.x + 20.0, scene.ego.y
    scene.actors, scene.traffic_lights = [], [light]
    front = render_cameras(scene, 448, 256)[FRONT].astype(int)
    u, v, _ = project(calib["lidar2img"][FRONT], (19.78, 0.0, 3.85))
    r, g, b = front[int(round(v)), int(round(u))]
    assert g > 150 and r < 80, (r, g, b)
    assert LIGHT_RGB[2][1] > 200


def test_box_crossing_the_near_plane_is_clipped():
    scene = example_scene()
    # A long truck alongside (its left face starts behind the front camera): the face must be near-plane
    # clipped and still fill the right half of CAM_FRONT with its shaded colour.
    truck = ActorState(7, "vehicle", "vehicle.carlamotors.carlacola", scene.ego.x, scene.ego.y + 3.0, 0.0, 0.0,
                       (6.0, 1.3, 1.5))
    scene = _only(scene, truck)
    calib = camera_calibration(448, 256)
    front = render_cameras(scene, 448, 256)[FRONT].astype(int)
    paint = np.array(actor_color("vehicle", 7)) * 0.68     # left face shade
    for x in (4.0, 6.0):
        u, v, _ = project(calib["lidar2img"][FRONT], (x, 1.7, 1.5))
        assert np.abs(front[int(round(v)), int(round(u))] - paint).max() <= 2
    assert front[5, 10, 2] > front[5, 10, 0] + 60  # the left of the view is still sky


@pytest.mark.parametrize("forward, yaw", [(0.0, 0.0), (7.3, 0.4)])
def test_roi_ground_warp_equals_the_full_warp_below_the_horizon(forward, yaw):
    # The renderer warps only the rows below the horizon (RGBA raster, homography shifted by the horizon
    # row) and pastes the sky above; the ground rows must be what one full-image warp of the RGB map gives.
    scene = _only(example_scene())
    scene.ego.x += forward
    scene.ego.yaw += yaw
    renderer = CameraRenderer(448, 256)
    images = np.zeros((6, 256, 448, 3), np.uint8)
    renderer.render_ground(scene, images)
    raster = map_raster(scene)
    rgb = np.ascontiguousarray(raster.image[..., :3])
    ego_from_raster = world_to_ego(scene.ego) @ raster.px_to_world()
    horizon = renderer.horizon
    assert horizon == 129
    for cam in range(6):
        full = cv2.warpPerspective(rgb, renderer.ground[cam] @ ego_from_raster, (448, 256), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=GRASS)
        diff = np.abs(images[cam, horizon:].astype(int) - full[horizon:])
        assert diff.max() <= 1, (cam, diff.max())
        assert np.array_equal(images[cam, :horizon], renderer.sky)
    # Not trivially equal: the road and its markings are in view (many distinct colours below the horizon).
    assert len(np.unique(images[FRONT, horizon:].reshape(-1, 3), axis=0)) > 50
    # The horizon row is where the ground plane meets infinity: a ray through row 128 never hits the ground.
    k = renderer.intrinsics[FRONT]
    assert (horizon - 1 - k[1, 2]) <= 0 < (horizon - k[1, 2])


def test_render_into_a_caller_buffer():
    scene = example_scene(light_state=0)
    renderer = CameraRenderer(224, 128)
    fresh = renderer.render(scene)
    batch = np.full((2, 6, 128, 224, 3), 7, np.uint8)
    second = batch[1]
    assert render_cameras(scene, 224, 128, out=second) is second
    assert np.array_equal(batch[1], fresh) and (batch[0] == 7).all()
    with pytest.raises(ValueError, match="out: expected"):
        renderer.render(scene, out=np.zeros((6, 128, 224, 4), np.uint8))
    with pytest.raises(ValueError, match="out: expected"):
        renderer.render(scene, out=np.zeros((6, 128, 448, 3), np.uint8)[:, :, ::2])


def test_bev_is_ego_centred_and_coloured():
    scene = example_scene(light_state=0)
    bev = render_bev(scene, size_px=200, metres=50.0)
    assert bev.shape == (200, 200, 3)
    assert tuple(bev[100, 100]) == (255, 255, 255)         # ego drawn white at the centre
    # lead vehicle is 12 m ahead (ego heading east, pointing up): 12 m * 4 px/m above centre.
    lead = next(a for a in scene.actors if a.id == 11)
    ahead = lead.x - scene.ego.x
    assert tuple(bev[100 - int(ahead * 4), 100]) == (60, 130, 240)
    # red traffic light disk at the light's position (x=+15.5 m ahead, 2.75 m right)
    light = scene.traffic_lights[0]
    col = 100 + int(round((light.y - scene.ego.y) * 4))
    row = 100 - int(round((light.x - scene.ego.x) * 4))
    assert tuple(bev[row, col]) == LIGHT_RGB[0]
    scene.plan = {"waypoints": np.array([[scene.ego.x + 5.0, scene.ego.y]])}
    assert tuple(render_bev(scene)[80, 100]) == (255, 255, 0)
