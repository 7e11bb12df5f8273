"""Double of scenario_runner's CarlaDataProvider: only the world the agent base class reads the hero from."""


class CarlaDataProvider:
    _world = None

    @staticmethod
    def set_world(world):
        CarlaDataProvider._world = world

    @staticmethod
    def get_world():
        return CarlaDataProvider._world
