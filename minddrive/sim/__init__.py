"""Driving environments: the embedded simulator (default) and the CARLA backend."""
