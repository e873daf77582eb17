"""Re-identification scored against who is who: returns, false merges, groups.

Ground truth is an identities file (CSV, ``file,face,person``): ``file`` is a labelled video or
photo of an eval set, ``face`` the labelled face as the eval-set runner names it (a photo's
``face_id``; a video's ``left`` / ``centre`` / ``right`` / ordinal from its face_hint; empty:
every labelled face of the file), ``person`` any name of the real person. Rows with the same
person are one person; different names are different people; a labelled face not listed is left
out of the identity scores. Each labelled file is one appearance, in the order the runner plays
them (benchmarks/identity.py builds its own timelines with absences and scores them the same way).

- returns: an appearance of someone seen in an earlier one whose most frequent person id is the
  one they had at their previous appearance, over all such appearances (target >= 95 %);
- false merges: pairs of different people who were given one person id on any labelled frame,
  over every pair of people scored (target 0);
- groups: appearances of N >= 2 people, and whether they got N different person ids.
"""
from __future__ import annotations

import csv
import itertools
from collections import Counter
from pathlib import Path

from .labels_file import LabelsError

EVERY_FACE = ""  # a row's face: every labelled face of the file


def load_identities(path: str | Path) -> dict[tuple[str, str], str]:
    """{(file, face): person} from an identities CSV; LabelsError on a file that is not one."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise LabelsError(f"{path}: cannot read an identities file ({type(err).__name__}: {err})") from None
    if not rows or not {"file", "face", "person"} <= set(rows[0]):
        raise LabelsError(f"{path}: an identities file needs the columns file,face,person")
    identities: dict[tuple[str, str], str] = {}
    for n, row in enumerate(rows, start=2):
        file, face, person = ((row.get(k) or "").strip() for k in ("file", "face", "person"))
        if not file or not person:
            raise LabelsError(f"{path}:{n}: file and person must not be empty")
        if (file, face) in identities and identities[(file, face)] != person:
            raise LabelsError(f"{path}:{n}: {file} face {face or '(every)'} is listed as two people")
        identities[(file, face)] = person
    return identities


def person_of(identities: dict[tuple[str, str], str], file: str, face: str) -> str | None:
    """The real person of a labelled face (None: not listed)."""
    return identities.get((file, face), identities.get((file, EVERY_FACE)))


def score_identity(appearances: list[tuple[str, dict[str, Counter]]]) -> dict:
    """``appearances``: (name, {real person: Counter of the person ids given to them}) in the
    order they happened. Returns the scores the module doc describes, with the failures named."""
    previous: dict[str, str] = {}
    returns, matched, failures = 0, 0, []
    given: dict[str, set[str]] = {}
    groups = []
    for name, seen in appearances:
        seen = {person: ids for person, ids in seen.items() if ids}
        for person, ids in seen.items():
            given.setdefault(person, set()).update(ids)
            person_id = ids.most_common(1)[0][0]
            if person in previous:
                returns += 1
                matched += person_id == previous[person]
                if person_id != previous[person]:
                    failures.append({"appearance": name, "person": person, "got": person_id,
                                     "before": previous[person], "ids": dict(ids)})
            previous[person] = person_id
        if len(seen) > 1:
            distinct = len({ids.most_common(1)[0][0] for ids in seen.values()})
            groups.append({"appearance": name, "people": len(seen), "person_ids": distinct})
    people = sorted(given)
    pairs = list(itertools.combinations(people, 2))
    merged = [{"people": [a, b], "person_ids": sorted(given[a] & given[b])} for a, b in pairs if given[a] & given[b]]
    return {
        "people": len(people),
        "returns": returns,
        "returns_matched": matched,
        "return_match_rate": matched / returns if returns else None,
        "return_failures": failures,
        "pairs": len(pairs),
        "false_merges": len(merged),
        "merged_pairs": merged,
        "groups": groups,
        "groups_with_one_id_each": sum(g["person_ids"] == g["people"] for g in groups),
        "person_ids_given": len(set().union(*given.values())) if given else 0,
    }
