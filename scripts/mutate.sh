#!/usr/bin/env bash
# `make mutate`: mutation testing (mutmut) of the pure cores, one module at a time, against
# their fast unit tests ([tool.mutmut] in pyproject.toml). Prints each module's figures and
# its surviving mutants; `.venv/bin/mutmut show NAME` shows what a survivor changed.
#
#   MUTATE_MODULES="recommender.routing edge_agent.outbox" make mutate   # only these
#   MUTATE_JOBS=4 make mutate                                           # parallel workers
#
# Not part of `make test`: a full run takes tens of minutes. docs/testing.md records the
# last figures and what each remaining survivor means.
set -euo pipefail
bin="${BIN:-.venv/bin}"
jobs="${MUTATE_JOBS:-1}"
modules="${MUTATE_MODULES:-recommender.routing recommender.arbitration recommender.eligibility \
recommender.scoring edge_agent.camera.line_counter edge_agent.camera.tracker presence.zone_fusion \
edge_agent.outbox broker_config.contract}"

# A fresh copy each time: mutmut copies the packages once and would test stale ones.
rm -rf mutants
mkdir mutants
for module in $modules; do
  echo "== mutmut: $module (log: mutants/run-$module.log)"
  "$bin/mutmut" run --max-children "$jobs" "$module.*" >"mutants/run-$module.log" 2>&1 \
    || { tail -n 40 "mutants/run-$module.log"; exit 1; }
done
# The figures from each module's own run log (its "Mutant results": one line per mutant).
"$bin/python" - $modules <<'PY'
import re
import sys
from pathlib import Path

KILLED = {"🎉": "killed", "⏰": "timeout"}  # a mutant that hangs a test is detected too
OTHER = {"🙁": "survived", "🫥": "no tests", "🤔": "suspicious", "🔇": "skipped", "💥": "segfault"}
print(f"\n{'module':34} {'total':>6} {'killed':>7} {'timeout':>8} {'not killed':>11}  detected")
survivors: list[str] = []
for module in sys.argv[1:]:
    log = Path("mutants") / f"run-{module}.log"
    text = log.read_text(encoding="utf-8", errors="replace")
    text = text[text.find("Mutant results") :]
    found = dict(
        (name, mark) for mark, name in re.findall(rf"^(\S+) ({re.escape(module)}\.\S+)$", text, re.M)
    )
    killed = sum(1 for m in found.values() if m == "🎉")
    timeout = sum(1 for m in found.values() if m == "⏰")
    missed = [(n, OTHER.get(m, m)) for n, m in found.items() if m not in KILLED]
    rate = (killed + timeout) / len(found) if found else 1.0
    print(f"{module:34} {len(found):>6} {killed:>7} {timeout:>8} {len(missed):>11}  {rate:6.1%}")
    survivors += [f"{n}: {why}" for n, why in missed]
print("\nNot killed (docs/testing.md says which are equivalent):" if survivors else "\nEvery mutant killed.")
for line in sorted(survivors):
    print("   ", line)
PY
