"""Double of the leaderboard's route thinning and world -> GNSS mapping (same rules, own code)."""

import math

EARTH_RADIUS_EQUA = 6378137.0
LANE_CHANGES = (5, 6)            # RoadOption.CHANGELANELEFT / CHANGELANERIGHT


def _value(option):
    return int(getattr(option, "value", option))


def downsample_route(route, sample_factor):
    """Indices kept: the first point, every lane-change point, every option change (except leaving a lane
    change), a point once more than ``sample_factor`` m were driven since the last kept one, the last point."""
    ids, prev, dist = [], None, 0.0
    for i, (transform, option) in enumerate(route):
        curr = _value(option)
        if prev is None or curr in LANE_CHANGES or (curr != prev and prev not in LANE_CHANGES) \
                or dist > sample_factor or i == len(route) - 1:
            ids.append(i)
            dist = 0.0
        else:
            dist += transform.location.distance(route[i - 1][0].location)
        prev = curr
    return ids


def _location_to_gps(lat_ref, lon_ref, location):
    scale = math.cos(lat_ref * math.pi / 180.0)
    mx = scale * lon_ref * math.pi * EARTH_RADIUS_EQUA / 180.0 + location.x
    my = scale * EARTH_RADIUS_EQUA * math.log(math.tan((90.0 + lat_ref) * math.pi / 360.0)) - location.y
    lon = mx * 180.0 / (math.pi * EARTH_RADIUS_EQUA * scale)
    lat = 360.0 * math.atan(math.exp(my / (EARTH_RADIUS_EQUA * scale))) / math.pi - 90.0
    return {"lat": lat, "lon": lon, "z": location.z}
