# Tiny MindDrive for CPU tests and the quick start: 2-layer 64-wide Qwen2 on the tiny tokenizer, a small CNN
# over 6 cameras at 128x224, 16 object + 8 lane scene queries (+1 ego/navigation token) -> 25 scene tokens.
model = dict(
    type="MindDrive",
    seed=0,
    data_preprocessor=dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
    vision=dict(
        backbone=dict(type="SmallCNN", out_channels=32, widths=(8, 16, 24)),
        position_embedding=dict(depth_bins=8, depth_start=1.0, depth_max=61.0),
    ),
    query_decoder=dict(type="SceneQueryDecoder", embed_dim=32, num_object_queries=16, num_lane_queries=8,
                       num_layers=1, num_heads=4, ffn_dim=64, memory_size=8, aux_heads=True, lane_points=10),
    scene_tokens=dict(num_object_tokens=16, num_lane_tokens=8),
    llm=dict(
        tokenizer=dict(type="tiny", vocab_size=512),
        config=dict(vocab_size=640, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                    tie_word_embeddings=True, rope_theta=1e6,
                    # A random frozen base needs token embeddings large enough for logits to separate: at HF's
                    # default 0.02 the (frozen, tied) LM head caps logit gaps near 1 and the answer CE cannot
                    # leave log(vocab). Real configs load trained Qwen2 weights and never see this.
                    initializer_range=0.2),
        attn_implementation="sdpa",
        gradient_checkpointing=False,
        lora=dict(r=8, lora_alpha=16, lora_dropout=0.0,
                  target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")),
    ),
    trajectory_head=dict(type="GenerativeTrajectoryHead", hidden=64, latent_dim=32),
    loss_weights=dict(lm=1.0, planning=3.0, map_boundary=3.0, kl=3.0, collision=1.0, aux_detection=0.0, aux_lane=0.0),
    map_boundary_threshold=1.0,
    trainable=("action_expert", "vision", "projector", "query_decoder", "trajectory_head"),
    # Plan the path as an offset from the navigation route (models/minddrive.py): the tiny model trained on
    # a few expert clips otherwise drifts out of lane in closed loop (benchmarks/RESULTS.md, RL).
    path_anchor="route",
)
image_size = (128, 224)  # H, W of each camera at the network input
