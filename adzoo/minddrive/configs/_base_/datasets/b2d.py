# Real Bench2Drive Base (1000 clips) + Chat-B2D-plus. Build the index first:
#   minddrive prepare-data --root data/bench2drive --out data/infos --vqa-root data/chat-b2d-plus \
#       --split-file data/splits/bench2drive_base_train_val_split.json --workers 16
# Stage 1 (VQA) here; stage 2 / 3 configs override data.train.stage / data.val.stage (2: planning QA, 3: mixed)
# (mmengine resolves the variables below inside this file, so overriding `stage` alone changes nothing).

data_root = "data/bench2drive"
info_root = "data/infos"
vqa_root = "data/chat-b2d-plus"
tokenizer = dict(type="pretrained", path="ckpts/Qwen2-0.5B")  # must match model.llm.tokenizer
input_size = (640, 640)  # (W, H) per camera, EVA-02-L/16 input as upstream
stage = 1

train_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ResizeCropImages", size=input_size, crop="bottom"),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackImages"),  # 0..255 RGB; the model's data_preprocessor normalises
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
