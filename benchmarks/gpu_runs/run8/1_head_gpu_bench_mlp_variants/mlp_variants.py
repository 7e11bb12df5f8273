"""Scratch: time the ViT MLP sub-block (x + mlp(norm2(x))) fwd+bwd compiled, at the IL step's shape, per variant."""
import json, os, sys, time
import torch, torch.nn.functional as F
sys.path.insert(0, os.getcwd())
from minddrive.models.vision import _SwiGLU, _LayerNorm

def stats_centred(xf, n, pad):
    mean = xf.sum(-1, keepdim=True) / n
    centred = xf - mean
    var = (centred.square().sum(-1, keepdim=True) - pad * mean.square()) / n
    return centred, var

def stats_onepass(xf, n, pad):
    mean = xf.sum(-1, keepdim=True) / n
    var = xf.square().sum(-1, keepdim=True) / n - mean.square()
    return xf - mean, var

def make_forward(split, onepass):
    stats = stats_onepass if onepass else stats_centred
    def forward(self, x):
        hidden = self.w3.in_features
        pad = (-hidden) % self.ALIGN
        if split:
            w1, w2 = self.w12.weight.view(2, hidden, -1).unbind(0)
            b1, b2 = self.w12.bias.view(2, hidden).unbind(0)
            a = F.linear(x, F.pad(w1, (0, 0, 0, pad)), F.pad(b1, (0, pad)))
            b = F.linear(x, F.pad(w2, (0, 0, 0, pad)), F.pad(b2, (0, pad)))
        else:
            w12, b12, _ = self.padded_weights(pad)
            a, b = F.linear(x, w12, b12).chunk(2, dim=-1)
        g = F.silu(a) * b
        n = g.shape[-1] - pad
        centred, var = stats(g.float(), n, pad)
        weight, bias = F.pad(self.norm.weight, (0, pad)), F.pad(self.norm.bias, (0, pad))
        h = (centred * torch.rsqrt(var + self.norm.eps) * weight + bias).to(g.dtype)
        return F.linear(h, F.pad(self.w3.weight, (0, pad)), self.w3.bias)
    return forward

class Sub(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm2 = _LayerNorm(1024)
        self.mlp = _SwiGLU(1024, 2730)
    def forward(self, x):
        return x + self.mlp(self.norm2(x))

def run(name, fwd, n_tokens=38400, iters=20):
    torch.compiler.reset()
    torch.manual_seed(0)
    m = Sub().cuda()
    with torch.no_grad():  # non-trivial LN params
        m.mlp.norm.weight.normal_(1, 0.1); m.mlp.norm.bias.normal_(0, 0.1)
    _SwiGLU.forward = fwd
    m.compile(backend="inductor")
    x0 = torch.randn(n_tokens, 1024, device="cuda") * 0.5 + 0.1
    gy = torch.randn(n_tokens, 1024, device="cuda")
    def step():
        x = x0.clone().requires_grad_(True)
        with torch.autocast("cuda", torch.bfloat16):
            y = m(x)
        e1 = torch.cuda.Event(enable_timing=True); e1.record()
        y.backward(gy)
        return y, x, e1
    for _ in range(4):
        step()
    m.zero_grad()
    y, x, _ = step()
    ref = dict(y=y.detach().float(), gx=x.grad.float(), gw12=m.mlp.w12.weight.grad.float(), gnw=m.mlp.norm.weight.grad.float())
    torch.cuda.synchronize()
    fw, bw = [], []
    for _ in range(iters):
        s = torch.cuda.Event(enable_timing=True); s.record()
        _, _, mid = step()
        e = torch.cuda.Event(enable_timing=True); e.record()
        torch.cuda.synchronize()
        fw.append(s.elapsed_time(mid)); bw.append(mid.elapsed_time(e))
    fw.sort(); bw.sort()
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step(); torch.cuda.synchronize()
    top = [(e.key[:80], round(e.self_device_time_total / 1e3, 3)) for e in
           sorted(prof.key_averages(), key=lambda e: -e.self_device_time_total)[:10]]
    return dict(name=name, fwd_ms=fw[len(fw)//2], bwd_ms=bw[len(bw)//2], top=top), ref

if __name__ == "__main__":
    out = os.environ.get("OUT", "/tmp")
    orig = _SwiGLU.forward
    results, refs = [], {}
    variants = [("current", orig), ("current_inline", make_forward(False, False)), ("split", make_forward(True, False)),
                ("onepass", make_forward(False, True)), ("split_onepass", make_forward(True, True))]
    for name, fwd in variants:
        r, ref = run(name, fwd)
        refs[name] = ref
        if name != "current":
            r["max_rel_diff_vs_current"] = {k: float((ref[k] - refs["current"][k]).abs().max() / refs["current"][k].abs().max()) for k in ref}
        print(json.dumps(r), flush=True)
        results.append(r)
    # per-block x24 for the IL step
    json.dump(results, open(os.path.join(out, "mlp_variants.json"), "w"), indent=1)
