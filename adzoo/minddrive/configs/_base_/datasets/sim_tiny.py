# Clips written by the embedded simulator (`minddrive sim-data`) in the Bench2Drive layout, for the CPU
# quick start and tests: the Bench2Drive dataset at other roots, the tiny tokenizer and the tiny input size.
# Build the index first:
#   minddrive prepare-data --root data/sim_tiny --out data/sim_tiny/infos --vqa-root data/sim_tiny/vqa --workers 2
_base_ = ["./b2d.py"]

data_root = "data/sim_tiny"
info_root = "data/sim_tiny/infos"
vqa_root = "data/sim_tiny/vqa"
tokenizer = dict(_delete_=True, type="tiny", vocab_size=512)  # must match model.llm.tokenizer
# (W, H) of the tiny model's input (its `image_size`, H x W = 128 x 224); `minddrive sim-data --image-size
# 128x224` writes clips at that size, so the resize is a no-op then, and cheap otherwise.
input_size = (224, 128)

# No PhotoMetricDistortion: a few hundred steps on the simulator's fixed lighting gain nothing from it and
# every tuned budget (il_tiny.py) was measured without it; train and test read the same pipeline.
train_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ResizeCropImages", size=input_size, crop="bottom"),
    dict(type="PackImages"),
]
test_pipeline = train_pipeline

data = dict(
    train=dict(ann_file=f"{info_root}/b2d_infos_train.pkl", data_root=data_root, vqa_root=vqa_root,
               pipeline=train_pipeline, tokenizer=tokenizer),
    val=dict(ann_file=f"{info_root}/b2d_infos_val.pkl", data_root=data_root, vqa_root=vqa_root,
             pipeline=test_pipeline, tokenizer=tokenizer),
)
