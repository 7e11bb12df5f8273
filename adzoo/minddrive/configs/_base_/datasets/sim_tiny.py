# Clips written by the embedded simulator (`minddrive sim-data`) in the Bench2Drive layout, for the CPU
# quick start and tests. Build the index first:
#   minddrive prepare-data --root data/sim_tiny --out data/sim_tiny/infos --vqa-root data/sim_tiny/vqa --workers 2

data_root = "data/sim_tiny"
info_root = "data/sim_tiny/infos"
vqa_root = "data/sim_tiny/vqa"
tokenizer = dict(type="tiny", vocab_size=512)  # must match model.llm.tokenizer
input_size = (448, 256)   # (W, H): the simulator's own render size (minddrive.sim.sensors.DEFAULT_IMAGE_SIZE)
stage = 2

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

data = dict(
    train=dict(type="Bench2DriveDataset", ann_file=f"{info_root}/b2d_infos_train.pkl", data_root=data_root,
               vqa_root=vqa_root, stage=stage, pipeline=train_pipeline, tokenizer=tokenizer, max_length=2048,
               planning_qa_ratio=0.8),
    val=dict(type="Bench2DriveDataset", ann_file=f"{info_root}/b2d_infos_val.pkl", data_root=data_root,
             vqa_root=vqa_root, stage=stage, pipeline=test_pipeline, tokenizer=tokenizer, max_length=2048,
             planning_qa_ratio=1.0),
)
