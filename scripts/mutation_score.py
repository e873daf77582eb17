"""Mutation score from `mutmut results --all true`, per module and overall, as JSON.

Usage: python scripts/mutation_score.py RESULTS_TXT EQUIVALENT_TXT

A mutant that a test killed or that made the tests time out counts as caught; one that survived
or that no test reached counts as missed. Mutants named in EQUIVALENT_TXT (one per line,
`name  # why it cannot change behaviour`) are reported apart and left out of the score, unless a
test caught them: mutmut numbers the mutants of a function in order, so editing the function can
move a listed name onto another mutant; such stale entries count as caught and are listed under
`equivalent_but_caught`, to be re-checked.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

CAUGHT = {"killed", "timeout"}
PENDING = {"not checked"}  # an interrupted run: neither caught nor missed yet
LINE = re.compile(r"^\s*(?P<name>[\w.]+__mutmut_\d+): (?P<status>.+?)\s*$")


def read_equivalent(path: Path) -> dict[str, str]:
    """Mutant name -> the reason it is equivalent; each line needs a reason."""
    reasons = {}
    for number, line in enumerate(path.read_text().splitlines(), 1) if path.exists() else ():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, reason = line.partition("#")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: give the reason after '#': {line!r}")
        reasons[name.strip()] = reason.strip()
    return reasons


def module_of(mutant: str) -> str:
    """`emotion_perception.images.x_to_rgb__mutmut_3` -> `emotion_perception.images`."""
    function = mutant.rsplit("__mutmut_", 1)[0]  # ends in the mangled x_name or xǁClassǁmethod
    return function.rsplit(".", 1)[0]


def score(results: str, equivalent: dict[str, str]) -> dict:
    per_module: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    seen, stale = set(), []
    for line in results.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        name, status = match["name"], match["status"]
        seen.add(name)
        module = module_of(name)
        if status in PENDING:
            per_module[module]["pending"] += 1
        elif status in CAUGHT:
            per_module[module]["caught"] += 1
            if name in equivalent:
                stale.append(name)
        elif name in equivalent:
            per_module[module]["equivalent"] += 1
        else:
            per_module[module]["missed"] += 1
            survivors[module].append(f"{name}: {status}")
    total = Counter()
    for counts in per_module.values():
        total.update(counts)

    def ratio(c: Counter) -> float | None:
        scored = c["caught"] + c["missed"]
        return round(c["caught"] / scored, 4) if scored else None

    return {
        "score": ratio(total),
        "caught": total["caught"],
        "missed": total["missed"],
        "equivalent": total["equivalent"],
        "pending": total["pending"],
        "equivalent_not_found": sorted(set(equivalent) - seen),
        "equivalent_but_caught": sorted(stale),
        "modules": {
            m: {**dict(c), "score": ratio(c), "survivors": survivors[m]} for m, c in sorted(per_module.items())
        },
    }


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    report = score(Path(argv[1]).read_text(), read_equivalent(Path(argv[2])))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
