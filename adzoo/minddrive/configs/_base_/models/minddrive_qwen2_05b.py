# MindDrive with Qwen2-0.5B (upstream shapes). Weights come from local directories under ckpts/ only.
# Scene tokens: the decoder keeps upstream's 600 object + 300 lane queries, but hands the LLM the 256 / 128
# highest-scoring ones plus the ego/navigation token (385 tokens), so scene + prompt + answers stay well
# inside the 2048-token context (900 tokens would leave too little room for multi-turn VQA with history).
model = dict(
    type="MindDrive",
    seed=0,
    data_preprocessor=dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
    vision=dict(
        backbone=dict(type="EVA02ViT", img_size=(640, 640), patch_size=16, embed_dim=1024, depth=24, num_heads=16,
                      mlp_ratio=4 * 2 / 3, window_size=16, global_every=3, out_channels=None, grad_checkpoint=True,
                      pretrained="ckpts/eva02_L_coco_det_sys_o365_remapped.pth"),
        position_embedding=dict(depth_bins=64, depth_start=1.0, depth_max=61.0),
    ),
    query_decoder=dict(type="SceneQueryDecoder", embed_dim=256, num_object_queries=600, num_lane_queries=300,
                       num_layers=6, num_heads=8, ffn_dim=2048, memory_size=256, aux_heads=True, lane_points=20),
    scene_tokens=dict(num_object_tokens=256, num_lane_tokens=128),
    llm=dict(
        pretrained="ckpts/Qwen2-0.5B",
        tokenizer=dict(type="pretrained", path="ckpts/Qwen2-0.5B"),
        # The architecture of ckpts/Qwen2-0.5B, for random-weight builds (drop ``pretrained``) and shape tests.
        config=dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                    num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                    tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6),
        attn_implementation="sdpa",
        gradient_checkpointing=True,
        lora=dict(r=16, lora_alpha=16, lora_dropout=0.05,
                  target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")),
    ),
    trajectory_head=dict(type="GenerativeTrajectoryHead", hidden=512, latent_dim=32),
    loss_weights=dict(lm=1.0, planning=3.0, map_boundary=3.0, kl=3.0, collision=1.0, aux_detection=1.0, aux_lane=1.0),
    map_boundary_threshold=1.0,
    trainable=("action_expert", "vision", "projector", "query_decoder", "trajectory_head"),
)
image_size = (640, 640)
