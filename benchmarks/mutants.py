"""Count the mutant answers per lesson and how many the checks catch; print a Markdown table.

The mutants are the table-driven cases of ``tests/mutants_table.py`` (plausible wrong answers: off by
one, wrong axis or reduction, missing scale, an input changed in place, a made-up result, the stub
itself). A mutant is *caught* when its check gives the expected status (``fail``, or ``not_attempted``
for the stub) with a message containing the helpful fragment the table names; *failed* counts those
that at least did not pass. Right answers must pass. Everything runs in this process
(``run_check``: inputs → call → wire → compare), no kernel per mutant.

Run: ``python benchmarks/mutants.py`` (about a minute on 2 CPU cores; it builds a few tiny models).
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
# benchmarks/ holds peft.py, optim.py ...: keep it off the path so they do not shadow the packages of those names.
sys.path[:] = [str(REPO), str(REPO / "tests")] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]


def main() -> int:
    import torch

    torch.set_num_threads(1)
    from mutants_table import CASES
    from tutorlib.grading.registry import exercises, run_check

    start = time.perf_counter()
    rows: dict[str, dict[str, set | int]] = defaultdict(lambda: {"ex": set(), "mutants": 0, "caught": 0, "failed": 0,
                                                                 "right": 0, "right_ok": 0})
    missed = []
    for case in CASES:
        r = rows[case.lesson]
        r["ex"].add(case.exercise)
        result = run_check(case.exercise, case.namespace(), device="cpu")
        if case.mutant:
            r["mutants"] += 1
            r["failed"] += result.status != "pass"
            ok = result.status == case.status and case.fragment in result.message
            r["caught"] += ok
            if not ok:
                missed.append(f"{case.exercise} {case.label!r}: {result.status}: {result.message[:160]}")
        else:
            r["right"] += 1
            r["right_ok"] += result.status == "pass"
            if result.status != "pass":
                missed.append(f"{case.exercise} right answer: {result.status}: {result.message[:160]}")
    protocol = defaultdict(lambda: [0, 0])
    for ex in exercises():
        protocol[ex.lesson][1] += 1
        protocol[ex.lesson][0] += ex.check is not None
    print("| lesson | exercises on the protocol | exercises with mutants | mutants | caught (right status and message) | "
          "failed at all | right answers passing |")
    print("|---|---|---|---|---|---|---|")
    total = defaultdict(int)
    for lesson in sorted(set(rows) | set(protocol)):
        r = rows.get(lesson, {"ex": set(), "mutants": 0, "caught": 0, "failed": 0, "right": 0, "right_ok": 0})
        on, n = protocol[lesson]
        print(f"| {lesson} | {on}/{n} | {len(r['ex'])} | {r['mutants']} | {r['caught']} | {r['failed']} | "
              f"{r['right_ok']}/{r['right']} |")
        for k, v in (("on", on), ("n", n), ("ex", len(r["ex"])), ("mutants", r["mutants"]), ("caught", r["caught"]),
                     ("failed", r["failed"]), ("right", r["right"]), ("right_ok", r["right_ok"])):
            total[k] += v
    print(f"| all | {total['on']}/{total['n']} | {total['ex']} | {total['mutants']} | {total['caught']} | {total['failed']} | "
          f"{total['right_ok']}/{total['right']} |")
    print(f"\n{len(CASES)} answers judged in {time.perf_counter() - start:.0f} s")
    for line in missed:
        print("MISSED", line)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
