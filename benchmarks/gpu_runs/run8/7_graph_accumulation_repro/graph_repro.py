"""Scratch script of run 8, calls 7-8: which trainer-like loop breaks the CUDA-graphed regions (real-code model
on CUDA, through ``Engine``). Variants: ``alt1`` one micro-batch per step, batches alternating; ``acc2`` two
micro-batches accumulated per step; ``_keep`` with the interim fix this call tested, ``keep_gradients_allocated``
(zero gradients allocated up front, zeroed in place). That fix was replaced before commit by copying the first
micro-batch's gradients out (``Engine.backward(accumulating=True)``): allocated zero gradients made AdamW decay
parameters that get no gradient. The final fix ran in call 9 (``multi_gpu_bench.py --graphs``, 1 process
accumulating 2 micro-batches). Kept as it ran; ``keep_gradients_allocated`` no longer exists.

    python3 graph_repro.py VARIANT [tiny|05b]
"""
import sys, os
sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks")); sys.path.insert(0, os.getcwd())
import torch
import gpu_bench as gb
from minddrive.train.trainer import total_loss
from minddrive.train.distributed import Engine

variant = sys.argv[1]
size = sys.argv[2] if len(sys.argv) > 2 else "tiny"
dev = torch.device("cuda")
spec = gb.SIZES[size]
model, image_size, _ = gb.build_model(spec, dev)
model.train()
model.compile_regions(backend="inductor", mode="reduce-overhead")
acc = 2 if "acc2" in variant else 1
engine = Engine(model, model, gb.make_optimizer(model), 35.0, acc)
if "keep" in variant:
    engine.keep_gradients_allocated()
bs = 2 if size == "tiny" else 4
batches = [gb.training_batch(model, bs, image_size, spec.text_len, dev, seed=m) for m in range(2)]
try:
    for step in range(5):
        for j in range(acc if "alt1" not in variant else 1):
            b = batches[(step + j) % 2]
            torch.compiler.cudagraph_mark_step_begin()
            with gb.autocast(dev):
                loss = total_loss(engine(b))
            engine.backward(loss)
        engine.step()
        print(variant, "step", step, float(loss), flush=True)
    print(variant, size, "OK", "peak", gb.peak_memory_gib(dev))
except Exception as e:
    print(variant, size, "FAIL", type(e).__name__, str(e).splitlines()[0][:200])
