# MindDrive with Qwen2.5-3B: the 0.5B model with a wider, deeper LLM (the projector follows hidden_size = 2048;
# vocabulary, attention layout and RoPE are Qwen2-0.5B's).
_base_ = ["./minddrive_qwen2_05b.py"]

model = dict(
    llm=dict(
        pretrained="ckpts/Qwen2.5-3B",
        tokenizer=dict(path="ckpts/Qwen2.5-3B"),
        config=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16),
    ),
)
