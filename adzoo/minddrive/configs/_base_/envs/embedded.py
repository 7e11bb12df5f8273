# The embedded simulator (minddrive.sim): 10 Hz, seeded scenario worlds; rollouts step all worlds of a
# worker in one VecDriveEnv call. Cameras are rendered only for models that read images.
env = dict(type="EmbeddedDriveEnv", render=True, image_size=(128, 224))
