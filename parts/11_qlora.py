# %% [markdown]
# ## 4-bit base + LoRA: the QLoRA idea
#
# **Why.** LoRA trains a few small matrices, but the *frozen* base model still sits in memory, in
# float32: 4 bytes per weight. For SmolLM2-135M that is about half a gigabyte; for a 7-billion-parameter
# model it is 28 GB, before a single activation or gradient. Nothing in the frozen weights needs to be
# trained, so nothing forces them to be stored in float. **QLoRA** (Dettmers et al., 2023) stores the
# frozen base in **4 bits** and trains LoRA in float on top:
#
# 1. each frozen weight matrix is quantized to **NF4** ("4-bit NormalFloat"): 16 levels placed where
#    normally distributed weights are dense, one float scale per block of 64 weights;
# 2. in every forward (and backward) pass the layer **dequantizes** its weight on the fly, computes
#    `x @ W.T`, and throws the float copy away;
# 3. gradients flow *through* the dequantized weight into the LoRA matrices; the 4-bit codes never change.
#
# The price: every step pays for the dequantization, and the base model is slightly changed by rounding.
# This section measures both, against the float base.

# %%
import copy
import time

import matplotlib.pyplot as plt
import torch
import transformers
from IPython.display import Markdown, display

from tutorlib.data.instructions import load_extraction
from tutorlib.llm import nf4
from tutorlib.llm.prompting import EXTRACTION_SYSTEM
from tutorlib.llm.sft import collate, evaluate_sft, prompt_completion_example
from tutorlib.models import load_llm
from tutorlib.runtime import budget, is_smoke, setup

device = setup(seed=0)
torch.set_num_threads(min(2, torch.get_num_threads()))

# %% [markdown]
# ### The 16 NF4 levels
#
# A uniform 4-bit grid spaces its 16 levels evenly over [-1, 1]. Trained weights are not uniform: they
# are roughly normal, crowded near zero. NF4 puts its levels at **quantiles of a standard normal**
# (rescaled so the extremes are ±1, with an exact 0), so each level is used about equally often by
# normal data. `nf4.nf4_levels()` rebuilds them from the normal quantile function; they are the table
# of the QLoRA paper (`nf4.NF4_LEVELS`), which `bitsandbytes` and `torchao` use.

# %%
levels = nf4.nf4_levels()
print("NF4 levels:", " ".join(f"{v:+.4f}" for v in levels.tolist()))
print("max |rebuilt - paper table| =", f"{(levels - torch.tensor(nf4.NF4_LEVELS, dtype=torch.float64)).abs().max():.1e}")
print("gaps between neighbours:    ", " ".join(f"{g:.3f}" for g in levels.diff().tolist()))

# %% [markdown]
# The gaps are narrow near zero and wide at the extremes. Does that pay on a real weight matrix? We
# quantize one of the model's matrices with the NF4 levels and with a uniform 16-level grid (same
# blocks, same scales) and compare the reconstruction error and how often each code is used.
#
# **How (blockwise absmax).** Cut the flattened weight into blocks of 64; divide each block by its
# largest magnitude (its *scale*, stored in float32); replace each value by the index of the nearest
# level; pack two 4-bit indices per byte. For one block:

# %%
model_fp, tok = load_llm("smollm2", device="cpu")
weight = model_fp.model.layers[0].mlp.up_proj.weight.detach()
block = weight.reshape(-1)[:64]
scale = block.abs().max()
codes = (block.unsqueeze(-1) / scale - levels.float()).abs().argmin(dim=-1)    # nearest level, 0..15
packed = codes[0::2] << 4 | codes[1::2]                                           # two codes per byte
print(f"one block: scale {scale:.4f}, first codes {codes[:8].tolist()}, {packed.numel()} bytes for 64 weights")
q = nf4.quantize_nf4(weight)             # the library version, for whole matrices
print("same codes as tutorlib.llm.nf4.quantize_nf4:", torch.equal(nf4.unpack_codes(q.codes)[:64], codes))

# %%
uniform = torch.linspace(-1, 1, 16)
rows = {}
for name, grid in (("NF4", None), ("uniform 4-bit", uniform)):
    qw = nf4.quantize_nf4(weight, levels=grid)
    err = (nf4.dequantize_nf4(qw) - weight).pow(2).mean().sqrt() / weight.pow(2).mean().sqrt()
    rows[name] = (float(err), torch.bincount(nf4.unpack_codes(qw.codes), minlength=16))
fig, ax = plt.subplots(figsize=(7, 3))
for i, (name, (err, counts)) in enumerate(rows.items()):
    ax.bar(torch.arange(16) + (i - 0.5) * 0.4, counts / counts.sum(), width=0.4, label=f"{name} (relative RMS error {err:.3f})")
ax.axhline(1 / 16, color="gray", ls=":", label="equal use (1/16)")
ax.set_xlabel("code (level index, 0 = -1, 15 = +1)"); ax.set_ylabel("share of the weights")
ax.set_title(f"4-bit codes of a SmolLM2 weight matrix {tuple(weight.shape)}"); ax.legend(fontsize=8)
fig.tight_layout(); plt.show()
nf4_err, uni_err = rows["NF4"][0], rows["uniform 4-bit"][0]
display(Markdown(f"On this matrix the NF4 levels give a relative RMS error of **{nf4_err:.4f}** against **{uni_err:.4f}** "
                 f"for the uniform grid ({nf4_err / uni_err:.2f}×): NF4 is "
                 f"{'the better' if nf4_err < uni_err else 'not the better'} 4-bit grid for these weights."))

# %% [markdown]
# ### Same codes as `torchao`
#
# Our quantizer is written from scratch; `torchao`'s `to_nf4` is a maintained implementation (it also
# **double-quantizes** the scales: their mean is subtracted and each group of 256 scales is stored in
# int8 with one float factor, which cuts the scales' cost from 0.5 to about 0.13 bit per weight).
# `torchao` writes the 16 levels rounded to 4 decimals, so we pass its table and compare the packed
# bytes, the int8 scales and the dequantized values on a random tensor:

# %%
from torchao.quantization import to_nf4

w = torch.randn(32, 512)
theirs = to_nf4(w, block_size=64, scaler_block_size=256)
ours = nf4.quantize_nf4(w, block_size=64, double_quant=True, scale_block_size=256, levels=theirs.nf4)
print("packed codes equal: ", torch.equal(ours.codes, theirs.quantized_data))
print("int8 scales equal:  ", torch.equal(ours.scale_codes, theirs.quantized_scalers))
print("dequantized equal:  ", torch.equal(nf4.dequantize_nf4(ours), theirs.get_original_weight()))
print(f"bytes: float32 {w.numel() * 4:,}, NF4 {nf4.quantize_nf4(w).nbytes:,}, NF4 + double quantization {ours.nbytes:,}")

# %% [markdown]
# ### The QLoRA layer, and the experiment
#
# `nf4.NF4Linear` keeps the packed codes and scales as buffers and adds LoRA matrices `A` (r × in) and
# `B` (out × r, zero at the start, so the layer starts equal to its base). Its forward computes
# `x @ dequantize(W).T + (alpha/r) · B A x`. The dequantization runs inside a custom autograd function
# that dequantizes *again* in backward instead of saving the float copy: otherwise autograd would keep
# every layer's float weight alive until backward, and the 4-bit storage would save nothing during
# training. `nf4.quantize_linears(model)` swaps a Llama's seven projections per block for `NF4Linear`
# and freezes everything else; `nf4.lora_linears(model)` does the same with a float base — the same
# LoRA code, so the only difference between the two runs is the base.
#
# Both are trained on the course's review → JSON set (loss on the answer only), with the same seed and
# the same batches; we measure the frozen weights' bytes, the peak bytes of tensors created in one
# training step (activations, gradients, Adam's state, dequantized temporaries), the CPU seconds per
# step and the held-out loss before and after training. Smoke mode runs a tiny random Llama.

# %%
steps, batch_size = budget(full=8, smoke=3), budget(full=4, smoke=2)
train_ex = [prompt_completion_example(tok, ex.review, ex.answer, system=EXTRACTION_SYSTEM)
            for ex in load_extraction("train", limit=steps * batch_size)]
held_ex = [prompt_completion_example(tok, ex.review, ex.answer, system=EXTRACTION_SYSTEM)
           for ex in load_extraction("heldout", limit=budget(full=24, smoke=4))]
batches = [collate(train_ex[i:i + batch_size], tok.pad_token_id) for i in range(0, len(train_ex), batch_size)]
if is_smoke():   # a tiny random Llama with SmolLM2's vocabulary: the mechanics, not the numbers
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    model_fp = transformers.LlamaForCausalLM(cfg).eval()
print(f"{len(train_ex)} training examples in {len(batches)} batches of {batch_size}, {len(held_ex)} held-out examples")


def run(prepare):
    torch.manual_seed(0)                                   # the same LoRA initialisation for both
    t0 = time.process_time()
    model = prepare(copy.deepcopy(model_fp), r=16, alpha=32)
    prep_s = time.process_time() - t0
    before = evaluate_sft(model, held_ex, pad_id=tok.pad_token_id)["loss"]
    opt = torch.optim.AdamW(nf4.lora_parameters(model), lr=1e-3, weight_decay=0.0)

    def step(b):
        loss = model(**b).loss
        opt.zero_grad(); loss.backward(); opt.step()

    peak = nf4.step_peak_bytes(lambda: step(batches[0]), model=model)    # step 1: also creates Adam's state
    cpu = []
    for b in batches[1:]:
        t0 = time.process_time(); step(b); cpu.append(time.process_time() - t0)
    after = evaluate_sft(model, held_ex, pad_id=tok.pad_token_id)["loss"]
    sizes = nf4.weight_bytes(model)
    return {"frozen MB": sizes["frozen"] / 1e6, "LoRA MB": sizes["trainable"] / 1e6, "step peak MB": peak / 1e6,
            "CPU s/step": sum(cpu) / max(1, len(cpu)), "prepare CPU s": prep_s, "held-out before": before,
            "held-out after": after}


results = {"float base + LoRA": run(nf4.lora_linears), "NF4 base + LoRA (QLoRA)": run(nf4.quantize_linears)}
formats = {"frozen MB": ".1f", "LoRA MB": ".1f", "step peak MB": ".0f", "CPU s/step": ".2f", "prepare CPU s": ".1f",
           "held-out before": ".3f", "held-out after": ".3f"}
display(Markdown("| variant | " + " | ".join(formats) + " |\n|---|" + "---|" * len(formats) + "\n" + "\n".join(
    f"| {name} | " + " | ".join(format(r[c], f) for c, f in formats.items()) + " |" for name, r in results.items())))

# %%
fl, q4 = results["float base + LoRA"], results["NF4 base + LoRA (QLoRA)"]
names = ["float base", "NF4 base"]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
axes[0].bar(names, [fl["frozen MB"], q4["frozen MB"]], label="frozen weights")
axes[0].bar(names, [fl["step peak MB"], q4["step peak MB"]], bottom=[fl["frozen MB"], q4["frozen MB"]],
            label="tensors of one step", alpha=0.6)
axes[0].set_ylabel("MB"); axes[0].set_title("Memory: weights + one training step"); axes[0].legend(fontsize=8)
axes[1].bar(names, [fl["CPU s/step"], q4["CPU s/step"]], color="tab:orange")
axes[1].set_ylabel("CPU seconds per step"); axes[1].set_title("Time of a training step")
x = torch.arange(2).float()
axes[2].bar(x - 0.2, [fl["held-out before"], q4["held-out before"]], width=0.4, label="before LoRA")
axes[2].bar(x + 0.2, [fl["held-out after"], q4["held-out after"]], width=0.4, label=f"after {steps} steps")
axes[2].set_xticks(x.numpy(), names); axes[2].set_ylabel("held-out loss (nats/answer token)")
axes[2].set_title("Quality"); axes[2].legend(fontsize=8)
fig.tight_layout(); plt.show()

# %% [markdown]
# **Reading the result.** The next cell states the measured numbers. What to look for: the frozen
# weights shrink by the ratio of 32 bits to about 4.5 bits (4-bit codes plus one float32 scale per 64
# weights) on the quantized projections, while the embeddings, norms and LM head stay in float; the
# memory of one training step (activations, gradients, Adam's state) is not touched by quantization
# and at larger batches dominates — QLoRA attacks the weights, not the activations. On a CPU each step
# is *slower* with the 4-bit base: every forward and backward dequantizes each weight, and there is no
# fused 4-bit kernel (on a GPU, `bitsandbytes`' kernels make this cheap). And note what the "float"
# base is: the bundled SmolLM2 is the GGUF file's **Q4_1** weights dequantized to float32, so NF4
# re-quantizes a model that was already 4-bit, on a different grid — the before-training loss shows
# what that costs, and the after-training loss whether LoRA recovers it.
# `benchmarks/qlora.py` repeats this with each variant in a fresh process (peak RSS) and adds `torchao`'s NF4.

# %%
def compare(a, b, unit, fmt=".2f"):
    return f"{a:{fmt}} {unit} against {b:{fmt}} {unit} ({a / b:.2f}× the float base's)"


loss_gap = q4["held-out before"] - fl["held-out before"]
recovered = q4["held-out after"] - fl["held-out after"]
display(Markdown(
    f"- **Memory.** The frozen weights take {compare(q4['frozen MB'], fl['frozen MB'], 'MB', '.1f')} with the NF4 base; "
    f"the LoRA matrices add {q4['LoRA MB']:.1f} MB in both runs, and one training step created "
    f"{q4['step peak MB']:.0f} MB (NF4) and {fl['step peak MB']:.0f} MB (float) of tensors at its peak.\n"
    f"- **Time.** A training step took {compare(q4['CPU s/step'], fl['CPU s/step'], 'CPU s')} "
    f"— {'slower' if q4['CPU s/step'] > fl['CPU s/step'] else 'not slower'} with the 4-bit base on this CPU; "
    f"quantizing the model took {q4['prepare CPU s']:.1f} CPU s once.\n"
    f"- **Quality.** Before training the NF4 base's held-out loss is {q4['held-out before']:.3f} against "
    f"{fl['held-out before']:.3f} for the float base ({loss_gap:+.3f} nats per answer token: re-quantizing the Q4_1 "
    f"weights {'costs' if loss_gap > 0 else 'does not cost'} quality). After {steps} LoRA steps: {q4['held-out after']:.3f} "
    f"against {fl['held-out after']:.3f} ({recovered:+.3f})."
    + (" *(Smoke mode: a tiny random model, so these numbers only check the mechanics.)*" if is_smoke() else "")))
