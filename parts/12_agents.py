# %% [markdown]
# ## Tool calling with a small agent loop
#
# A 135M-parameter model cannot multiply 47 by 86 reliably: arithmetic is not something next-token
# prediction learns well at this size. A **tool** fixes that: the model only has to *ask* for the
# computation, and Python does it exactly. The protocol most chat models use is plain text:
#
# 1. the tools are described as JSON schemas inside the prompt (`apply_chat_template(messages, tools=...)`);
# 2. the model answers `<tool_call>{"name": "calculator", "arguments": {"expression": "47 * 86"}}</tool_call>`;
# 3. the program parses the call, runs the function and appends the result as a `tool` message;
# 4. the model reads the result and writes the final answer.
#
# Steps 2–4 repeat until the model answers without a call or a step limit is hit: that loop is an
# **agent**. SmolLM2-135M's own chat template ignores `tools`, so `tutorlib.llm.tools.render_chat` falls back
# to a ChatML template with the common `<tools>` / `<tool_call>` / `<tool_response>` layout (the one of the
# larger SmolLM2 and Qwen2.5 models). The schema is built from the function's type hints and docstring.

# %%
import json
import random
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from tutorlib.llm import dialogue, tools
from tutorlib.models import load_llm
from tutorlib.runtime import budget, is_smoke, setup

setup(seed=0)
llm_model, llm_tok = load_llm("smollm2", device="cpu")
if is_smoke():  # seconds, not minutes: a tiny random Llama with SmolLM2's tokenizer (the numbers mean nothing)
    from transformers import LlamaConfig, LlamaForCausalLM

    llm_model = LlamaForCausalLM(LlamaConfig(vocab_size=len(llm_tok), hidden_size=32, intermediate_size=64,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             eos_token_id=llm_tok.eos_token_id, pad_token_id=llm_tok.pad_token_id)).eval()
registry = tools.ToolRegistry([tools.calculator])
print(json.dumps(registry.schemas()[0], indent=1))

# %% [markdown]
# The test set: course-written arithmetic word questions (products of two 2-digit numbers, sums and
# differences of 4- and 3-digit numbers), with exact answers. A separate pool provides the worked examples
# shown to the model; each **seed** draws different examples, so the spread over seeds says how much the
# result depends on that choice. The agent loop is `tools.run_agents` (the parser is
# `tools.parse_tool_calls`; a broken call or a failing tool goes back to the model as an error message).

# %%
questions = tools.arithmetic_questions(budget(full=30, smoke=6), seed=2024)
pool = tools.arithmetic_questions(20, seed=7)  # examples come from a disjoint pool
seeds = [0, 1, 2]
SYSTEM = "You are a careful assistant. Use the calculator tool for any arithmetic."
texts = [q["question"] for q in questions]
tool_tokens = budget(full=24, smoke=8)
cpu0 = time.process_time()

zero = tools.run_agents(tools.chat_generator(llm_model, llm_tok, registry, max_new_tokens=tool_tokens, batch_size=48),
                        registry, texts, max_steps=2, system=SYSTEM)
print("zero-shot reply:", repr(zero[0].messages[1].get("content") or zero[0].messages[1])[:160])


def accuracy(results):
    return np.array([tools.answer_is_correct(r.answer, q["answer"]) for r, q in zip(results, questions)], float)


runs = {"alone (few-shot)": [], "zero-shot tools": [], "few-shot tools": [], "few-shot + forced call": []}
valid = {"zero-shot tools": [], "few-shot tools": [], "few-shot + forced call": []}
prefix = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "'
for seed in seeds:
    shots = random.Random(seed).sample(pool, 2)
    alone_prompts = [tools.render_chat(llm_tok, [{"role": "system", "content": "You are a careful assistant."},
                                                 *tools.few_shot_messages(shots, use_tool=False),
                                                 {"role": "user", "content": t}]) for t in texts]
    alone = tools.generate_batch(llm_model, llm_tok, alone_prompts, max_new_tokens=budget(full=12, smoke=4), batch_size=48)
    runs["alone (few-shot)"].append(np.array([tools.answer_is_correct(a, q["answer"]) for a, q in zip(alone, questions)], float))
    runs["zero-shot tools"].append(accuracy(zero))  # no examples to draw: the same run pairs with every seed
    valid["zero-shot tools"].append(np.array([r.valid_call for r in zero], float))
    for name, call_prefix, steps in [("few-shot tools", "", tool_tokens), ("few-shot + forced call", prefix, budget(full=16, smoke=4))]:
        gen = tools.chat_generator(llm_model, llm_tok, registry, max_new_tokens=steps, batch_size=48, call_prefix=call_prefix)
        res = tools.run_agents(gen, registry, texts, max_steps=2, system=SYSTEM,
                               examples=tools.few_shot_messages(shots, use_tool=True))
        runs[name].append(accuracy(res))
        valid[name].append(np.array([r.valid_call for r in res], float))
tool_cpu = time.process_time() - cpu0
print("forced call, first question:", res[0].messages[1:])
print(f"CPU time of the tool experiment: {tool_cpu:.0f} s")

# %% [markdown]
# Accuracy is the share of questions whose first number in the final answer is the exact result; the
# tool-call validity rate is the share whose first reply was a call that parsed and ran. The standard error of
# a gain is **paired**: the same questions and the same drawn examples, so we take the per-question difference
# over all (question, seed) pairs.

# %%
def mean_se(x):
    x = np.concatenate(x)
    return x.mean(), x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else 0.0


acc = {k: mean_se(v) for k, v in runs.items()}
val = {k: mean_se(v) for k, v in valid.items()}
baselines = ["alone (few-shot)", "zero-shot tools", "few-shot tools"]
best = max(baselines, key=lambda k: acc[k][0])
gain, gain_se = mean_se([a - b for a, b in zip(runs["few-shot + forced call"], runs[best])])
for k in runs:
    print(f"{k:24s} accuracy {acc[k][0]:.3f} ± {acc[k][1]:.3f}" + (f"   valid calls {val[k][0]:.3f} ± {val[k][1]:.3f}" if k in val else ""))
print(f"gain of the forced-call agent over the best baseline ({best}): {gain:+.3f} ± {gain_se:.3f} (paired SE)")

fig, ax = plt.subplots(figsize=(7, 3.2))
names = list(runs)
ax.bar(range(len(names)), [acc[k][0] for k in names], yerr=[acc[k][1] for k in names], capsize=4, color="tab:blue",
       label="answer accuracy")
ax.bar([i + 0.3 for i, k in enumerate(names) if k in val], [val[k][0] for k in names if k in val], width=0.3,
       color="tab:orange", label="valid tool calls")
ax.set_xticks(range(len(names)), names, fontsize=8)
ax.set_ylabel("share of questions")
ax.set_ylim(0, 1.05)
ax.set_title(f"SmolLM2-135M on {len(questions)} arithmetic questions × {len(seeds)} example draws (± SE)")
ax.legend()
plt.tight_layout()
plt.show()

# %%
claim = gain >= 2 * gain_se and gain > 0
display(Markdown(
    f"- Alone, with two worked examples, the model gets **{acc['alone (few-shot)'][0]:.0%}** of the "
    f"{len(questions)} questions right (± {acc['alone (few-shot)'][1]:.0%}).\n"
    f"- Shown the tool schema but no example, it makes a valid call on **{val['zero-shot tools'][0]:.0%}** of them; "
    f"with two worked tool-call examples on **{val['few-shot tools'][0]:.0%}** "
    f"(accuracy {acc['few-shot tools'][0]:.0%}).\n"
    f"- Forcing the start of the call (`{prefix.strip()}` is written for the model, which only fills in the "
    f"expression: a simple constrained decoding) gives **{val['few-shot + forced call'][0]:.0%}** valid calls "
    f"and **{acc['few-shot + forced call'][0]:.0%}** accuracy.\n"
    f"- Gain over the best baseline ({best}): **{gain:+.0%} ± {gain_se:.0%}** (paired SE over "
    f"{len(questions) * len(seeds)} question × seed pairs): "
    + ("more than two standard errors, a real gain." if claim else "not two standard errors: no claim of a gain.")))

# %% [markdown]
# ## Dialogue with a budget and a memory
#
# A chat model sees only its prompt: everything the conversation should "remember" must fit in it, and a
# small model's prompt budget fills quickly. `tutorlib.llm.ChatSession.for_chat_model` builds every prompt
# through SmolLM2's chat template and counts the budget in **real tokenizer tokens**. When the history does
# not fit it either **truncates** (drops the oldest turns) or **summarises** them (folds them into a short
# summary in the system message; here an extractive one, the first sentence of each user turn). A
# **long-term memory** (`LongTermMemory`: every turn with its MiniLM embedding in a SQLite file) works across
# sessions: a new session reopens the file and recalls the stored turns most similar to the question
# (`tutorlib.retrieval.cosine_top_k`).
#
# The test: the user states three personal facts, six unrelated exchanges follow, then each fact is asked
# about. Every strategy gets the same budget.

# %%
chat_budget = 160
count, render = dialogue.token_counter(llm_tok), dialogue.chat_renderer(llm_tok)
embed = dialogue.minilm_embedder("cpu")
strategies = ["truncate", "summarize", "memory"]
n_dialogues = budget(full=4, smoke=2)
cpu0 = time.process_time()
rows = []  # (strategy, seed, prompt, answer)

with tempfile.TemporaryDirectory() as memory_dir:
    for seed in seeds:
        convs = dialogue.recall_dialogues(n_dialogues, n_facts=3, n_filler=6, seed=100 + seed)
        for strategy in strategies:
            for p, a in dialogue.recall_prompts(convs, strategy, chat_budget, count, render, reply_tokens=16,
                                                embed=embed, memory_dir=memory_dir):
                rows.append((strategy, seed, p, a))
full_history = render([{"role": r, "content": t} for r, t in convs[0]["turns"]])
replies = tools.generate_batch(llm_model, llm_tok, [r[2] for r in rows], max_new_tokens=budget(full=16, smoke=4),
                               batch_size=36, share_prefix=False)
dialogue_cpu = time.process_time() - cpu0
print(f"full history: {count(full_history)} tokens; budget {chat_budget}; longest prompt sent "
      f"{max(count(r[2]) for r in rows)} tokens; CPU time {dialogue_cpu:.0f} s")
print("summarised prompt:\n" + next(r[2] for r in rows if r[0] == "summarize"))
print("memory reply:", repr(next(rep for r, rep in zip(rows, replies) if r[0] == "memory")))

# %%
recall = {s: np.array([dialogue.recall_correct(rep, r[3]) for r, rep in zip(rows, replies) if r[0] == s], float)
          for s in strategies}
in_prompt = {s: np.array([r[3] in r[2] for r in rows if r[0] == s], float) for s in strategies}
rec = {s: mean_se([recall[s]]) for s in strategies}
inp = {s: mean_se([in_prompt[s]]) for s in strategies}
for s in strategies:
    print(f"{s:10s} recall {rec[s][0]:.3f} ± {rec[s][1]:.3f}   answer present in the prompt {inp[s][0]:.3f}")
d_sum, se_sum = mean_se([recall["summarize"] - recall["truncate"]])
best_dialogue = max(("truncate", "summarize"), key=lambda s: rec[s][0])
d_mem, se_mem = mean_se([recall["memory"] - recall[best_dialogue]])
print(f"summary - truncate {d_sum:+.3f} ± {se_sum:.3f}; memory - {best_dialogue} {d_mem:+.3f} ± {se_mem:.3f} (paired SE)")

fig, ax = plt.subplots(figsize=(6, 3.2))
x = np.arange(len(strategies))
ax.bar(x - 0.2, [rec[s][0] for s in strategies], 0.4, yerr=[rec[s][1] for s in strategies], capsize=4,
       label="recall (reply names the fact)")
ax.bar(x + 0.2, [inp[s][0] for s in strategies], 0.4, label="fact present in the prompt")
ax.set_xticks(x, strategies)
ax.set_ylabel("share of questions")
ax.set_ylim(0, 1.05)
ax.set_title(f"Recall of early facts, {chat_budget}-token budget ({len(recall['memory'])} questions, ± SE)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
def verdict(d, se):
    return "more than two paired standard errors" if d > 0 and d >= 2 * se else "within two paired standard errors: no claim"


display(Markdown(
    f"- With a {chat_budget}-token budget the full history ({count(full_history)} tokens for one conversation) "
    f"does not fit. Truncation keeps the fact in the prompt for **{inp['truncate'][0]:.0%}** of the questions, "
    f"the summary for **{inp['summarize'][0]:.0%}**, the SQLite memory's recall for **{inp['memory'][0]:.0%}**.\n"
    f"- The model's replies name the fact for **{rec['truncate'][0]:.0%}** (truncate), "
    f"**{rec['summarize'][0]:.0%}** (summary) and **{rec['memory'][0]:.0%}** (long-term memory, in a new session).\n"
    f"- Summary vs truncation: **{d_sum:+.0%} ± {se_sum:.0%}** ({verdict(d_sum, se_sum)}); memory vs the best "
    f"in-session strategy ({best_dialogue}): **{d_mem:+.0%} ± {se_mem:.0%}** ({verdict(d_mem, se_mem)}).\n"
    f"- A model can only recall what reaches its prompt: the gap between the two bars of a strategy is what the "
    f"135M model loses even when the fact is there. The extractive summary keeps the newest part when it "
    f"overflows its half of the budget, so with more filler turns it loses the early facts as truncation does; "
    f"retrieval does not depend on the conversation's length."))
