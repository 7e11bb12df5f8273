"""Double of the leaderboard's SensorInterface: per-tag data, returned for the requested frame only."""


class SensorConfigurationInvalid(Exception):
    pass


class SensorReceivedNoData(Exception):
    pass


class SensorInterface:
    def __init__(self):
        self._sensors_objects = {}
        self._data = {}

    def register_sensor(self, tag, sensor_type, sensor):
        if tag in self._sensors_objects:
            raise SensorConfigurationInvalid(f"Duplicated sensor tag [{tag}]")
        self._sensors_objects[tag] = sensor

    def update_sensor(self, tag, data, frame):
        if tag not in self._sensors_objects:
            raise SensorConfigurationInvalid(f"The sensor with tag [{tag}] has not been created!")
        self._data[tag] = (frame, data)

    def get_data(self, frame):
        data = {tag: value for tag, value in self._data.items() if value[0] == frame}
        if len(data) < len(self._sensors_objects):
            raise SensorReceivedNoData("A sensor took too long to send their data")
        return data
