#!/usr/bin/python3
"""Writes tests/data/minicpmo26-tiny: a MiniCPM-o 2.6-layout checkpoint at toy size.

The layout is the release's (openbmb/MiniCPM-o-2_6): config.json with model_type
"minicpmo", version 2.6, the Qwen2 fields of its Qwen2.5 language model at the top level,
vision_config / slice_config as MiniCPM-V 2.6 has them, and the audio and speech fields
(audio_config, tts_config, init_vision / init_audio / init_tts, audio_pool_step, ...);
model.safetensors in bf16 with llm.*, vpm.*, resampler.* and tiny apm.* (Whisper encoder),
audio_projection_layer.* and tts.* (ChatTTS) tensors, which omnid must skip; a small
byte-level BPE tokenizer.json (the first 64 merges of minicpmv26-tiny's, Qwen2's
pre-tokenizer) with the MiniCPM-V and MiniCPM-o special tokens; and a tokenizer_config.json
whose chat_template is Qwen2.5's (the release's LLM), default system turn included.

The goldens next to it come from tools/minicpmo26_reference.py (PyTorch, float64), run
after this script. Sizes are chosen so that the folder stays under 1 MB.

  /usr/bin/python3 tools/make_minicpmo26_tiny.py && /usr/bin/python3 tools/minicpmo26_reference.py
"""
import json
import os
import shutil
import sys

import numpy as np
from PIL import Image

from safetensors_file import write_safetensors  # tools/safetensors_file.py

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
SRC = os.path.join(DATA, "minicpmv26-tiny")
DST = os.path.join(DATA, "minicpmo26-tiny")

# Language model (Qwen2: q/k/v biases, GQA, untied lm_head).
HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 128, 2, 4, 2, 32
HEAD_DIM = HIDDEN // HEADS
# Vision tower (SigLIP NaViT) and resampler; the resampler has hidden/128 heads.
V_HIDDEN, V_LAYERS, V_HEADS, V_FFN, PATCH, V_IMAGE = 32, 2, 2, 64, 14, 70
QUERIES, SCALE = 16, 56
# Tiny stand-ins for the parts omnid skips (the release: Whisper-medium, ChatTTS-200M).
A_DIM, A_LAYERS, A_FFN, A_MELS, A_POS = 16, 1, 64, 8, 16
T_DIM, T_LAYERS = 16, 1
MERGES = 64
# Special tokens the o-2.6 tokenizer adds for audio and speech (processing_minicpmo.py).
OMNI_TOKENS = ["<|audio_start|>", "<|audio|>", "<|audio_end|>", "<|spk_bos|>", "<|spk|>", "<|spk_eos|>",
               "<|tts_bos|>", "<|tts_eos|>"]

# Qwen2.5-Instruct's chat template, which the release's tokenizer_config.json carries:
# a default system turn "You are Qwen, created by Alibaba Cloud. You are a helpful
# assistant." when the first message is not a system one, ChatML turns, and a tools branch.
QWEN25_TEMPLATE = (
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n")


def bf16(a):
    """float32 array -> bf16 bytes, round to nearest even (as torch's .to(torch.bfloat16))."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype(np.uint16).tobytes()


class Weights:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.t = {}

    def mat(self, name, shape, scale=0.05):
        self.t[name] = ("BF16", list(shape), bf16(self.rng.normal(0.0, scale, shape)))

    def bias(self, name, n, scale=0.05):
        self.mat(name, (n,), scale)

    def norm(self, name, n):   # drawn away from 1 so that a missing norm shows
        self.t[name] = ("BF16", [n], bf16(1.0 + self.rng.uniform(-0.3, 0.3, n)))

    def norm_bias(self, name, n):   # drawn away from 0
        self.t[name] = ("BF16", [n], bf16(self.rng.uniform(-0.2, 0.2, n)))

    def linear(self, name, out_dim, in_dim, bias=True, scale=0.05):
        self.mat(name + ".weight", (out_dim, in_dim), scale)
        if bias:
            self.bias(name + ".bias", out_dim)

    def layer_norm(self, name, n):
        self.norm(name + ".weight", n)
        self.norm_bias(name + ".bias", n)


def tokenizer(src):
    """minicpmv26-tiny's tokenizer cut to its first MERGES merges, o-2.6's tokens added."""
    bpe = 256 + MERGES
    model = src["model"]
    model["merges"] = model["merges"][:MERGES]
    model["vocab"] = {s: i for s, i in model["vocab"].items() if i < bpe}
    added = []
    names = [t["content"] for t in src["added_tokens"]] + OMNI_TOKENS
    for i, s in enumerate(names):
        added.append({"id": bpe + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
    src["added_tokens"] = added
    return src, added


def main():
    with open(os.path.join(SRC, "tokenizer.json")) as f:
        tok, added = tokenizer(json.load(f))
    vocab = 256 + MERGES + len(added)
    vocab += -vocab % 8   # an embedding table larger than the tokenizer, as released checkpoints have
    ids = {t["content"]: t["id"] for t in added}

    w = Weights(26)
    # llm.*: Qwen2ForCausalLM under the llm. prefix.
    w.mat("llm.model.embed_tokens.weight", (vocab, HIDDEN), 0.5)
    w.norm("llm.model.norm.weight", HIDDEN)
    w.mat("llm.lm_head.weight", (vocab, HIDDEN))
    for l in range(LAYERS):
        p = "llm.model.layers.%d." % l
        w.norm(p + "input_layernorm.weight", HIDDEN)
        w.norm(p + "post_attention_layernorm.weight", HIDDEN)
        w.linear(p + "self_attn.q_proj", HEADS * HEAD_DIM, HIDDEN)
        w.linear(p + "self_attn.k_proj", KV_HEADS * HEAD_DIM, HIDDEN)
        w.linear(p + "self_attn.v_proj", KV_HEADS * HEAD_DIM, HIDDEN)
        w.linear(p + "self_attn.o_proj", HIDDEN, HEADS * HEAD_DIM, bias=False)
        w.linear(p + "mlp.gate_proj", FFN, HIDDEN, bias=False)
        w.linear(p + "mlp.up_proj", FFN, HIDDEN, bias=False)
        w.linear(p + "mlp.down_proj", HIDDEN, FFN, bias=False)
    # vpm.*: SigLIP NaViT (modeling_navit_siglip.py names).
    side = V_IMAGE // PATCH
    w.mat("vpm.embeddings.patch_embedding.weight", (V_HIDDEN, 3, PATCH, PATCH), 0.05)
    w.bias("vpm.embeddings.patch_embedding.bias", V_HIDDEN)
    w.mat("vpm.embeddings.position_embedding.weight", (side * side, V_HIDDEN), 0.3)
    for l in range(V_LAYERS):
        p = "vpm.encoder.layers.%d." % l
        w.layer_norm(p + "layer_norm1", V_HIDDEN)
        w.layer_norm(p + "layer_norm2", V_HIDDEN)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w.linear(p + "self_attn." + n, V_HIDDEN, V_HIDDEN, scale=0.15)
        w.linear(p + "mlp.fc1", V_FFN, V_HIDDEN, scale=0.15)
        w.linear(p + "mlp.fc2", V_HIDDEN, V_FFN, scale=0.15)
    w.layer_norm("vpm.post_layernorm", V_HIDDEN)
    # resampler.*: 2.6's Resampler (query, kv_proj, MultiheadAttention, three LayerNorms, proj).
    w.mat("resampler.query", (QUERIES, HIDDEN), 0.5)
    w.mat("resampler.kv_proj.weight", (HIDDEN, V_HIDDEN), 0.15)
    w.mat("resampler.attn.in_proj_weight", (3 * HIDDEN, HIDDEN), 0.1)
    w.bias("resampler.attn.in_proj_bias", 3 * HIDDEN)
    w.linear("resampler.attn.out_proj", HIDDEN, HIDDEN, scale=0.1)
    for n in ("ln_q", "ln_kv", "ln_post"):
        w.layer_norm("resampler." + n, HIDDEN)
    w.mat("resampler.proj", (HIDDEN, HIDDEN), HIDDEN ** -0.5)
    # apm.*: MiniCPMWhisperEncoder (WhisperEncoder names), skipped by omnid.
    w.linear("apm.conv1", A_DIM, A_MELS * 3)
    w.t["apm.conv1.weight"] = ("BF16", [A_DIM, A_MELS, 3], w.t["apm.conv1.weight"][2])
    w.linear("apm.conv2", A_DIM, A_DIM * 3)
    w.t["apm.conv2.weight"] = ("BF16", [A_DIM, A_DIM, 3], w.t["apm.conv2.weight"][2])
    w.mat("apm.embed_positions.weight", (A_POS, A_DIM))
    for l in range(A_LAYERS):
        p = "apm.layers.%d." % l
        w.linear(p + "self_attn.q_proj", A_DIM, A_DIM)
        w.linear(p + "self_attn.k_proj", A_DIM, A_DIM, bias=False)
        w.linear(p + "self_attn.v_proj", A_DIM, A_DIM)
        w.linear(p + "self_attn.out_proj", A_DIM, A_DIM)
        w.layer_norm(p + "self_attn_layer_norm", A_DIM)
        w.linear(p + "fc1", A_FFN, A_DIM)
        w.linear(p + "fc2", A_DIM, A_FFN)
        w.layer_norm(p + "final_layer_norm", A_DIM)
    w.layer_norm("apm.layer_norm", A_DIM)
    # audio_projection_layer.*: MultiModalProjector(encoder_ffn_dim // 4 -> LLM hidden).
    w.linear("audio_projection_layer.linear1", HIDDEN, A_FFN // 4)
    w.linear("audio_projection_layer.linear2", HIDDEN, HIDDEN)
    # tts.*: ConditionalChatTTS (projector from the LLM, a Llama decoder, code heads).
    w.linear("tts.projector.linear1", T_DIM, HIDDEN)
    w.linear("tts.projector.linear2", T_DIM, T_DIM)
    w.mat("tts.emb_text.weight", (32, T_DIM))
    w.mat("tts.emb_code.0.weight", (16, T_DIM))
    w.mat("tts.head_code.0.parametrizations.weight.original0", (16, 1))
    w.mat("tts.head_code.0.parametrizations.weight.original1", (16, T_DIM))
    for l in range(T_LAYERS):
        p = "tts.model.layers.%d." % l
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            w.linear(p + "self_attn." + n, T_DIM, T_DIM, bias=False)
        for n in ("gate_proj", "up_proj"):
            w.linear(p + "mlp." + n, 2 * T_DIM, T_DIM, bias=False)
        w.linear(p + "mlp.down_proj", T_DIM, 2 * T_DIM, bias=False)
        w.norm(p + "input_layernorm.weight", T_DIM)
        w.norm(p + "post_attention_layernorm.weight", T_DIM)
    w.norm("tts.model.norm.weight", T_DIM)

    cfg = {
        "_name_or_path": "openbmb/MiniCPM-o-2_6",
        "architectures": ["MiniCPMO"],
        "auto_map": {"AutoConfig": "configuration_minicpm.MiniCPMOConfig",
                     "AutoModel": "modeling_minicpmo.MiniCPMO",
                     "AutoModelForCausalLM": "modeling_minicpmo.MiniCPMO"},
        "model_type": "minicpmo",
        "version": 2.6,
        "attention_dropout": 0.0,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "initializer_range": 0.02,
        "max_position_embeddings": 4096,
        "max_window_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": 4096,
        "use_sliding_window": False,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.44.2",
        "use_cache": True,
        "vocab_size": vocab,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "batch_vision_input": True,
        "drop_vision_last_layer": False,
        "image_size": 448,
        "patch_size": PATCH,
        "query_num": QUERIES,
        "slice_mode": True,
        "use_image_id": True,
        "vision_batch_size": 16,
        "slice_config": {"max_slice_nums": 9, "patch_size": PATCH, "model_type": "minicpmv"},
        "vision_config": {"hidden_size": V_HIDDEN, "image_size": V_IMAGE, "intermediate_size": V_FFN,
                          "model_type": "siglip", "num_attention_heads": V_HEADS, "num_hidden_layers": V_LAYERS,
                          "patch_size": PATCH},
        "init_vision": True,
        "init_audio": True,
        "init_tts": True,
        "audio_pool_step": 2,
        "audio_chunk_length": 1.0,
        "stream_input": False,
        "audio_config": {"model_type": "whisper", "d_model": A_DIM, "encoder_layers": A_LAYERS,
                         "encoder_attention_heads": 2, "encoder_ffn_dim": A_FFN, "num_mel_bins": A_MELS,
                         "max_source_positions": A_POS, "activation_function": "gelu"},
        "tts_config": {"model_type": "conditional_chattts", "llm_dim": HIDDEN, "hidden_size": T_DIM,
                       "intermediate_size": 2 * T_DIM, "num_attention_heads": 2, "num_hidden_layers": T_LAYERS,
                       "num_audio_tokens": 16, "num_text_tokens": 32, "num_vq": 1, "use_speaker_embedding": True,
                       "use_llm_hidden_state": False, "streaming": False},
    }
    pre = {"image_processor_type": "MiniCPMVImageProcessor", "auto_map": {
               "AutoProcessor": "processing_minicpmo.MiniCPMOProcessor",
               "AutoImageProcessor": "image_processing_minicpmv.MiniCPMVImageProcessor"},
           "processor_class": "MiniCPMOProcessor", "max_slice_nums": 9, "scale_resolution": SCALE,
           "patch_size": PATCH, "use_image_id": True, "image_feature_size": QUERIES, "im_start": "<image>",
           "im_end": "</image>", "slice_start": "<slice>", "slice_end": "</slice>", "unk": "<unk>",
           "im_id_start": "<image_id>", "im_id_end": "</image_id>", "slice_mode": True,
           "norm_mean": [0.5, 0.5, 0.5], "norm_std": [0.5, 0.5, 0.5], "version": 2.6}
    with open(os.path.join(SRC, "tokenizer_config.json")) as f:
        tcfg = json.load(f)
    tcfg["added_tokens_decoder"] = {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                     "single_word", "special")} for t in added}
    tcfg["chat_template"] = QWEN25_TEMPLATE
    tcfg["tokenizer_class"] = "MiniCPMOTokenizer"

    shutil.rmtree(DST, ignore_errors=True)
    os.makedirs(os.path.join(DST, "case_small"))
    write_safetensors(os.path.join(DST, "model.safetensors"), w.t)
    for name, obj in (("config.json", cfg), ("preprocessor_config.json", pre), ("tokenizer_config.json", tcfg),
                      ("generation_config.json", {"bos_token_id": cfg["bos_token_id"],
                                                  "eos_token_id": cfg["eos_token_id"]})):
        with open(os.path.join(DST, name), "w") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False)
    with open(os.path.join(DST, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))
    # A 60x45 picture: not sliced (area under 56^2), upscaled to 70x42 (a 5x3 patch grid).
    rng = np.random.default_rng(7)
    img = np.zeros((45, 60, 3), np.uint8)
    img[:, :] = (40, 90, 200)
    img[8:30, 12:40] = (230, 200, 30)
    img = np.clip(img.astype(int) + rng.integers(-25, 26, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(os.path.join(DST, "case_small", "image.png"))
    with open(os.path.join(DST, "case_small", "question.txt"), "w") as f:
        f.write("What colour is the square?")
    print("wrote", DST, "(vocab %d)" % vocab, file=sys.stderr)


if __name__ == "__main__":
    main()
