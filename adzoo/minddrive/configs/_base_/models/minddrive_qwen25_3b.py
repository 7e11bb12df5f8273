# MindDrive with Qwen2.5-3B: the 0.5B model with a wider LLM (the projector follows hidden_size = 2048).
_base_ = ["./minddrive_qwen2_05b.py"]

model = dict(
    llm=dict(
        pretrained="ckpts/Qwen2.5-3B",
        tokenizer=dict(type="pretrained", path="ckpts/Qwen2.5-3B"),
        config=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                    num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=32768,
                    tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6),
    ),
)
