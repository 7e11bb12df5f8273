# Tiny MindDrive on embedded-simulator clips, CPU. Stage 1: VQA pre-training (scene description, critical objects, with history); no planning tokens.
#   minddrive train adzoo/minddrive/configs/minddrive_tiny_train_stage1.py
_base_ = [
    "_base_/models/minddrive_tiny.py",
    "_base_/datasets/sim_tiny.py",
    "_base_/schedules/il_tiny.py",
    "_base_/default_runtime.py",
]

stage = 1
# The network input of the tiny model (its `image_size`, H x W = 128 x 224): resizing here rather than in the
# model keeps JPEG decoding and augmentation cheap on CPU.
input_size = (224, 128)
train_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ResizeCropImages", size=input_size, crop="bottom"),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackImages"),
]
test_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ResizeCropImages", size=input_size, crop="bottom"),
    dict(type="PackImages"),
]
data = dict(train=dict(stage=1, pipeline=train_pipeline), val=dict(stage=1, pipeline=test_pipeline))
# A fixed number of steps (not epochs) keeps the CPU run short whatever the number of clips.
train_cfg = dict(max_iters=30)
trainable = ("action_expert", "vision", "query_decoder", "projector")
load_from = None
work_dir = "work_dirs/minddrive_tiny_train_stage1"
# Crash safety: an atomic checkpoint every `interval` iterations, the newest `max_keep` kept.
checkpoint_config = dict(by_epoch=False, interval=50, max_keep=2)
log_config = dict(interval=5)
