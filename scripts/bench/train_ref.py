"""Reference for the training benchmark: one PEFT training step in plain PyTorch, our own code
against torch's public API (no transformers, peft or bitsandbytes).

A Llama decoder (RMSNorm, RoPE in Hugging Face's rotate_half layout, grouped-query attention,
SwiGLU, tied output head, next-token cross-entropy) loaded from the same safetensors file our side
loads, and hand-written PEFT modules: LoRA (kaiming-uniform A, zero B, alpha / r scaling), DoRA
(magnitude / row norm of W + s·B·A, the norm detached as in PEFT), prompt tuning (virtual token
embeddings before the tokens) and QLoRA (the frozen weight kept as NF4 codes, 64-value blocks, double
quantization of the absmax, dequantized in the forward and again in the backward, as bitsandbytes
does). AdamW (torch.optim) on the trainable parameters only.

Reads one JSON job on stdin:
  {"case": {"id", "method": "lora"|"dora"|"qlora"|"prompt", "r", "alpha", "targets": [...],
            "virtualTokens"},
   "mode": "fp32"|"bf16", "threads", "weights": path, "shape": {...}, "ids": [[...]],
   "warmup", "steps", "lr"}
and prints one JSON line: {"version", "threads", "times": [s], "cpuTimes": [s], "loss0", "rssBase", "rssLoaded",
"peakAfterWarmup", "peakRss", "attention"}. Run one (case, mode) per process: the peak RSS is the process's own.
"""
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

# bitsandbytes' NF4 code (the 16 quantiles of N(0, 1) scaled to [-1, 1]).
NF4 = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
])
BLOCK, NESTED_BLOCK = 64, 256


def proc_status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def read_safetensors(file):
    """name -> f32 tensor, read tensor by tensor into its own storage (no whole-file copy in memory)."""
    out = {}
    with open(file, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        base = 8 + size
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if info["dtype"] != "F32":
                raise ValueError(f"{name}: expected F32, got {info['dtype']}")
            start, end = info["data_offsets"]
            buf = bytearray(end - start)
            f.seek(base + start)
            f.readinto(buf)
            out[name] = torch.frombuffer(buf, dtype=torch.float32).view(info["shape"])
    return out


class NF4Weight:
    """A frozen [n, k] weight as NF4 codes (two per byte, first in the high nibble) with double-quantized
    absmax: per-64 absmax minus their mean, as int8 codes scaled per 256 absmax (linear 8-bit code
    here, where bitsandbytes uses its dynamic 8-bit map: the same work per value)."""

    def __init__(self, w):
        self.shape = tuple(w.shape)
        blocks = w.reshape(-1, BLOCK)
        absmax = blocks.abs().amax(dim=1).clamp_min(1e-12)
        codes = ((blocks / absmax[:, None]).unsqueeze(-1) - NF4).abs().argmin(dim=-1).to(torch.uint8)
        codes = codes.reshape(-1, 2)
        self.packed = (codes[:, 0] << 4) | codes[:, 1]
        self.offset = absmax.mean()
        self.blocks = absmax.numel()
        centred = F.pad(absmax - self.offset, (0, -self.blocks % NESTED_BLOCK)).reshape(-1, NESTED_BLOCK)
        self.absmax2 = centred.abs().amax(dim=1).clamp_min(1e-12)
        self.absmax_q = torch.round(centred / self.absmax2[:, None] * 127).to(torch.int8)

    def dequantize(self, dtype):
        absmax = (self.absmax_q.float() / 127 * self.absmax2[:, None]).reshape(-1)[: self.blocks] + self.offset
        codes = torch.stack((self.packed >> 4, self.packed & 15), dim=1).reshape(-1).long()
        w = NF4[codes].reshape(-1, BLOCK) * absmax[:, None]
        return w.reshape(self.shape).to(dtype)


class NF4Matmul(torch.autograd.Function):
    """y = x·Wᵀ with W dequantized on the fly; the backward dequantizes again (nothing saved but x's dtype)."""

    @staticmethod
    def forward(ctx, x, holder):
        ctx.holder = holder
        return x @ holder.weight.dequantize(x.dtype).t()

    @staticmethod
    def backward(ctx, dy):
        return dy @ ctx.holder.weight.dequantize(dy.dtype), None


class Linear4(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.weight = NF4Weight(w)

    def forward(self, x):
        if torch.is_autocast_cpu_enabled():
            x = x.to(torch.get_autocast_cpu_dtype())  # QLoRA's compute dtype
        return NF4Matmul.apply(x, self)

    def dense_weight(self):
        return self.weight.dequantize(torch.float32)


class FrozenLinear(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.weight = nn.Parameter(w, requires_grad=False)

    def forward(self, x):
        return F.linear(x, self.weight)

    def dense_weight(self):
        return self.weight


class LoraLinear(nn.Module):
    def __init__(self, base, r, alpha, dora):
        super().__init__()
        self.base = base
        out_features, in_features = base.weight.shape
        self.lora_A = nn.Parameter(torch.empty(r, in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(out_features, r))
        self.scaling = alpha / r
        self.magnitude = nn.Parameter(base.dense_weight().norm(p=2, dim=1).detach().clone()) if dora else None

    def forward(self, x):
        y = self.base(x)
        lora = F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling
        if self.magnitude is None:
            return y + lora
        w = self.base.dense_weight()
        norm = (w + self.scaling * (self.lora_B @ self.lora_A).to(w.dtype)).norm(p=2, dim=1).detach()
        return (self.magnitude / norm) * (y + lora)


class RMSNorm(nn.Module):
    def __init__(self, w, eps):
        super().__init__()
        self.weight = nn.Parameter(w, requires_grad=False)
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def attention(q, k, v):
    """q, k, v: [B, heads, T, D] -> [B, heads, T, D], causal."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[2]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v


class Layer(nn.Module):
    def __init__(self, s, lin, norm):
        super().__init__()
        self.s = s
        self.input_layernorm = norm("input_layernorm")
        self.post_attention_layernorm = norm("post_attention_layernorm")
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (lin(f"self_attn.{n}") for n in ("q_proj", "k_proj", "v_proj", "o_proj"))
        self.gate_proj, self.up_proj, self.down_proj = (lin(f"mlp.{n}") for n in ("gate_proj", "up_proj", "down_proj"))

    def forward(self, x, cos, sin):
        s = self.s
        B, T, _ = x.shape
        n = self.input_layernorm(x)
        q = self.q_proj(n).view(B, T, s["heads"], s["headDim"]).transpose(1, 2)
        k = self.k_proj(n).view(B, T, s["kvHeads"], s["headDim"]).transpose(1, 2)
        v = self.v_proj(n).view(B, T, s["kvHeads"], s["headDim"]).transpose(1, 2)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        groups = s["heads"] // s["kvHeads"]
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        a = attention(q, k, v).transpose(1, 2).reshape(B, T, s["heads"] * s["headDim"])
        x = x + self.o_proj(a)
        n = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(n)) * self.up_proj(n))


class Llama(nn.Module):
    def __init__(self, s, weights, case, checkpointing=False):
        super().__init__()
        self.s = s
        self.checkpointing = checkpointing
        eps = 1e-5
        method, targets = case["method"], set(case.get("targets", []))
        adapted = method in ("lora", "dora", "qlora")

        def make_lin(prefix):
            def lin(name):
                w = weights.pop(f"{prefix}{name}.weight")
                base = Linear4(w) if method == "qlora" else FrozenLinear(w)
                if adapted and name.split(".")[1] in targets:
                    return LoraLinear(base, case["r"], case["alpha"], method == "dora")
                return base
            return lin

        def make_norm(prefix):
            return lambda name: RMSNorm(weights.pop(f"{prefix}{name}.weight"), eps)

        self.embed = nn.Parameter(weights.pop("model.embed_tokens.weight"), requires_grad=False)
        self.layers = nn.ModuleList(
            Layer(s, make_lin(f"model.layers.{i}."), make_norm(f"model.layers.{i}.")) for i in range(s["layers"])
        )
        self.norm = RMSNorm(weights.pop("model.norm.weight"), eps)
        P = case.get("virtualTokens", 0) if method == "prompt" else 0
        # Prompt tuning's RANDOM init: nn.Embedding's N(0, 1), as PEFT's PromptEmbedding.
        self.prompt = nn.Parameter(torch.randn(P, s["hidden"])) if P else None
        D = s["headDim"]
        self.inv_freq = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.float32) / D))

    def forward(self, ids):
        B, T = ids.shape
        x = F.embedding(ids, self.embed)
        labels = ids
        if self.prompt is not None:
            P = self.prompt.shape[0]
            x = torch.cat((self.prompt.unsqueeze(0).expand(B, P, -1), x), dim=1)
            labels = torch.cat((torch.full((B, P), -100, dtype=ids.dtype), ids), dim=1)
            T += P
        freqs = torch.outer(torch.arange(T, dtype=torch.float32), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        for layer in self.layers:
            if self.checkpointing:
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, use_reentrant=False)
            else:
                x = layer(x, cos, sin)
        logits = F.linear(self.norm(x), self.embed).float()
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


def main():
    job = json.load(sys.stdin)
    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    rss_base = proc_status_kib("VmRSS") * 1024
    weights = read_safetensors(job["weights"])
    model = Llama(job["shape"], weights, job["case"], job.get("checkpointing", False))
    del weights
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=job["lr"], weight_decay=0.0)
    ids = torch.tensor(job["ids"], dtype=torch.long)
    bf16 = job["mode"] == "bf16"
    rss_loaded = proc_status_kib("VmRSS") * 1024

    def step():
        t0, cpu0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(ids)
        loss.backward()
        opt.step()
        loss = loss.item()
        return time.perf_counter() - t0, time.process_time() - cpu0, loss

    times, cpu_times, losses = [], [], []
    peak_after_warmup = proc_status_kib("VmHWM") * 1024
    for i in range(job["warmup"] + job["steps"]):
        t, cpu, loss = step()
        if i + 1 == job["warmup"]:
            peak_after_warmup = proc_status_kib("VmHWM") * 1024
        losses.append(loss)
        if not math.isfinite(loss):
            raise RuntimeError(f"loss {loss} at step {i}")
        if i >= job["warmup"]:
            times.append(t)
            cpu_times.append(cpu)
    print(json.dumps({
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "attention": "scaled_dot_product_attention" if hasattr(F, "scaled_dot_product_attention") else "matmul + masked softmax",
        "trainable": sum(p.numel() for p in params),
        "times": times,
        "cpuTimes": cpu_times,
        "loss0": losses[0],
        "losses": losses,
        "rssBase": rss_base,
        "rssLoaded": rss_loaded,
        "peakAfterWarmup": peak_after_warmup,
        "peakRss": proc_status_kib("VmHWM") * 1024,
    }))


if __name__ == "__main__":
    main()
