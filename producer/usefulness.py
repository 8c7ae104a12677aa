"""Whether evaluations say something: a useful share beside the ok share.

A reply can follow the schema and still say nothing (empty lists, a blank summary, the same
score for everyone). This module measures that on a set of results, so every benchmark and
report can show it next to the share of valid replies:

- a reply is **useful** when it has at least one strength and one concern that each hold
  ``MIN_WORDS`` words, and a summary of at least ``MIN_SUMMARY_WORDS`` words;
- the **score spread** over the useful replies: distinct scores, standard deviation, and the
  share of the most common score (1.0 when every candidate got the same score).

The thresholds are deliberately low: they separate "said nothing" from "said something", not
good reasons from bad ones (that is what an anchor set and a reader are for).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

MIN_WORDS = 2  # a point of one word ("Python") is a keyword, not a reason
MIN_SUMMARY_WORDS = 5
_WORD = re.compile(r"[^\W\d_]{2,}")  # two or more letters, in any script


def words(text: str) -> int:
    """Words of two or more letters in ``text``."""
    return len(_WORD.findall(text))


def is_useful(evaluation: Mapping[str, Any]) -> bool:
    """Whether one evaluation (the parsed ``evaluation`` object of a result) says something."""

    def has_point(name: str) -> bool:
        points = evaluation.get(name) or []
        return any(isinstance(p, str) and words(p) >= MIN_WORDS for p in points)

    summary = evaluation.get("summary")
    return (
        has_point("strengths")
        and has_point("concerns")
        and isinstance(summary, str)
        and words(summary) >= MIN_SUMMARY_WORDS
    )


@dataclass(frozen=True, slots=True)
class Usefulness:
    """The useful share of a set of results and the spread of their scores."""

    results: int
    ok: int
    useful: int
    useful_share: float
    distinct_scores: int
    score_stdev: float
    top_score_share: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def usefulness(results: Iterable[Mapping[str, Any]]) -> Usefulness:
    """Measures native results (the results topic's values); other lines are not counted."""
    total = ok = 0
    useful_scores: list[int] = []
    for result in results:
        if "status" not in result:
            continue  # an OpenAI batch output line: no evaluation to judge
        total += 1
        evaluation = result.get("evaluation")
        if result["status"] != "ok" or not isinstance(evaluation, Mapping):
            continue
        ok += 1
        if is_useful(evaluation) and isinstance(evaluation.get("score"), int):
            useful_scores.append(evaluation["score"])
    counts = Counter(useful_scores)
    top = counts.most_common(1)[0][1] if counts else 0
    return Usefulness(
        results=total,
        ok=ok,
        useful=len(useful_scores),
        useful_share=len(useful_scores) / total if total else 0.0,
        distinct_scores=len(counts),
        score_stdev=statistics.pstdev(useful_scores) if useful_scores else 0.0,
        top_score_share=top / len(useful_scores) if useful_scores else 0.0,
    )
