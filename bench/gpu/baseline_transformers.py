#!/usr/bin/env python3
"""The transformers baseline for bench/gpu/bench_decode: the same shapes with random bf16
weights (Qwen2-7B decoder of MiniCPM-V 2.6, SigLIP-400M tower at 448x448), same
measurements: prefill 512, batch-1 decode after a 512-token prompt, 16 concurrent
sequences (128-token prompts) one token a step, 10 vision pieces. No network needed.
Prints a JSON object as its last line."""
import json
import sys
import time

import torch

LAYERS = int(sys.argv[1]) if len(sys.argv) > 1 else 28
PROMPT, STEPS, BATCH, CTX, PIECES = 512, 64, 16, 128, 10


def sync_time(fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t, out


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def main():
    from transformers import Qwen2Config, Qwen2ForCausalLM, DynamicCache
    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "layers": LAYERS}
    import transformers
    res["transformers"] = transformers.__version__
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    cfg = Qwen2Config(hidden_size=3584, intermediate_size=18944, num_hidden_layers=LAYERS, num_attention_heads=28,
                      num_key_value_heads=4, vocab_size=151666, max_position_embeddings=32768, rope_theta=1e6,
                      rms_norm_eps=1e-6, tie_word_embeddings=False)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(cfg).eval()
    for p in model.parameters():   # the default init is fine; keep values small and finite
        p.data.uniform_(-0.02, 0.02)
    ids = (torch.arange(PROMPT, device="cuda") * 7919 % cfg.vocab_size).view(1, -1)

    with torch.inference_mode():
        tp = []
        for r in range(4):
            t, _ = sync_time(lambda: model(ids, past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1))
            if r:
                tp.append(t)
        res["prefill_tok_s"] = PROMPT / median(tp)

        cache = DynamicCache()
        out = model(ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        td = []
        for i in range(STEPS):
            def one():
                o = model(tok, past_key_values=cache, use_cache=True)
                return o.logits[:, -1].float().cpu().argmax(-1, keepdim=True).cuda()
            t, tok = sync_time(one)
            if i >= 4:
                td.append(t)
        res["decode_ms"] = 1e3 * median(td)
        res["decode_tok_s"] = 1.0 / median(td)

        bids = ids[:, :CTX].repeat(BATCH, 1)
        cache = DynamicCache()
        out = model(bids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        tb = []
        for i in range(STEPS // 2):
            def step():
                o = model(tok, past_key_values=cache, use_cache=True)
                return o.logits[:, -1].float().cpu().argmax(-1, keepdim=True).cuda()
            t, tok = sync_time(step)
            if i >= 2:
                tb.append(t)
        res["batch"] = BATCH
        res["batch_tok_s"] = BATCH / median(tb)
    del model, cache, out
    torch.cuda.empty_cache()

    try:
        from transformers import SiglipVisionConfig, SiglipVisionModel
        vcfg = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                  num_attention_heads=16, image_size=448, patch_size=14)
        with torch.device("cuda"):
            vm = SiglipVisionModel(vcfg).eval()
        px = torch.randn(PIECES, 3, 448, 448, device="cuda")
        with torch.inference_mode():
            vm(pixel_values=px[:1])
            tv = [sync_time(lambda: vm(pixel_values=px))[0] for _ in range(3)]
        res["vision_pieces"] = PIECES
        res["vision_ms"] = 1e3 * median(tv)
    except Exception as e:  # noqa: BLE001 - report and keep the decoder numbers
        res["vision_error"] = repr(e)[:200]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
