# Tiny MindDrive for CPU tests and the quick start: the 0.5B architecture shrunk, a 2-layer 64-wide Qwen2 on the
# tiny tokenizer, a small CNN over 6 cameras at 128x224, 16 object + 8 lane scene queries (+1 ego/navigation
# token) -> 25 scene tokens. Random weights: nothing is loaded from ckpts/.
_base_ = ["./minddrive_qwen2_05b.py"]

model = dict(
    vision=dict(
        backbone=dict(_delete_=True, type="SmallCNN", out_channels=32, widths=(8, 16, 24)),
        position_embedding=dict(depth_bins=8),
    ),
    query_decoder=dict(embed_dim=32, num_object_queries=16, num_lane_queries=8, num_layers=1, num_heads=4,
                       ffn_dim=64, memory_size=8, lane_points=10),
    scene_tokens=dict(num_object_tokens=16, num_lane_tokens=8),
    llm=dict(
        pretrained=None,
        tokenizer=dict(_delete_=True, type="tiny", vocab_size=512),
        config=dict(vocab_size=640, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, max_position_embeddings=2048, rope_theta=1e6,
                    # A random frozen base needs token embeddings large enough for logits to separate: at HF's
                    # default 0.02 the (frozen, tied) LM head caps logit gaps near 1 and the answer CE cannot
                    # leave log(vocab). Real configs load trained Qwen2 weights and never see this.
                    initializer_range=0.2),
        gradient_checkpointing=False,
        lora=dict(r=8, lora_dropout=0.0),
    ),
    trajectory_head=dict(hidden=64),
    loss_weights=dict(aux_detection=0.0, aux_lane=0.0),
    # Plan the path as an offset from the navigation route (models/minddrive.py): the tiny model trained on
    # a few expert clips otherwise drifts out of lane in closed loop (benchmarks/RESULTS.md, RL).
    path_anchor="route",
)
image_size = (128, 224)  # H, W of each camera at the network input
