# Closed-loop inference with the qwen25_3B MindDrive (DESIGN.md §2): LLM width 2048, weights from ckpts/Qwen2.5-3B-Instruct (never a hub).
# The scene/vision parts follow the tiny base until the full-size model base config lands; --ckpt carries the weights.
_base_ = ["./_base_/models/minddrive_tiny.py", "./_base_/default_runtime.py"]

model = dict(
    llm=dict(
        tokenizer=dict(type="pretrained", path="ckpts/Qwen2.5-3B-Instruct"),
        pretrained="ckpts/Qwen2.5-3B-Instruct",
        config=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                    num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=32768,
                    tie_word_embeddings=True, rope_theta=1e6),
        lora=dict(r=16, lora_alpha=32),
    ),
)
env = dict(type="EmbeddedDriveEnv")
eval_driver = dict(decision_interval=5)
agent = dict(decision_interval=10, tick_dt=0.05, image_size={{_base_.image_size}})
suite = "sim-b2d-mini"
work_dir = "work_dirs/minddrive_qwen25_3B_infer"
