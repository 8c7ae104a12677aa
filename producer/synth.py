"""`RequestSynthesizer`: realistic synthetic evaluation requests for demos and benchmarks.

Lengths follow real hiring data closely enough to load an engine the way production does: resumes
are lognormal around a median of about 5,500 characters, job ads around 2,400, and many candidates
apply to each of a limited set of jobs (so the engine's prefix cache sees the same job text again
and again). Everything is drawn from one ``random.Random(seed)``: the same seed gives the same
requests, and the first N requests do not depend on how many are asked for.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consumer.schemas import (
    BATCH_CHAT_URL,
    BatchRequestLine,
    Candidate,
    EvaluationRequest,
    Job,
)
from producer import vocabulary as vocab
from producer.synth_text import ResumeWriter, job_ad, rubric

RESUME_MEDIAN_CHARS = 5_500
RESUME_SIGMA = 0.45
JOB_MEDIAN_CHARS = 2_400
JOB_SIGMA = 0.25
# Share of candidates from the job's own line of work; the rest are stretch applications.
SAME_FAMILY_SHARE = 0.7
# Popular postings attract more applicants: job k is drawn with weight 1 / k**ZIPF_EXPONENT.
ZIPF_EXPONENT = 0.8
DEFAULT_JOBS = 50
DEFAULT_MAX_TOKENS = 512

SYSTEM_PROMPT = (
    "You are an experienced recruiter. Evaluate how well the candidate fits the job. Reply with "
    'JSON only: {"strengths": [1-3 phrases], "concerns": [1-3 phrases], "summary": "...", '
    '"score": 0-100, "recommendation": "strong_yes|yes|maybe|no|strong_no"}.'
)


@dataclass(frozen=True, slots=True)
class SynthJob:
    """One synthetic posting, shared by many requests."""

    job: Job
    family: vocab.Family
    rubric: str


class RequestSynthesizer:
    """Generates `EvaluationRequest` values deterministically from a seed.

    Args:
        seed: Seed of the private random generator; None for a fresh random one.
        jobs: How many distinct postings the candidates apply to.
        timestamps: Set ``created_at`` to the generation time (otherwise it stays absent and the
            worker measures end-to-end latency from the Kafka message timestamp).
        model: Value of each request's ``model`` field, or None to leave routing to the worker.
        clock: Source of ``created_at`` (tests inject one).
    """

    def __init__(
        self,
        seed: int | None = None,
        jobs: int = DEFAULT_JOBS,
        *,
        timestamps: bool = False,
        model: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self._rng = random.Random(seed)
        self._timestamps = timestamps
        self._model = model
        self._clock = clock
        self._writer = ResumeWriter(self._rng)
        self.jobs = [self._job(number) for number in range(1, jobs + 1)]
        self._weights = [1 / rank**ZIPF_EXPONENT for rank in range(1, jobs + 1)]

    def _length(self, median: int, sigma: float) -> int:
        """Draws a target text length from a lognormal distribution."""
        return round(self._rng.lognormvariate(math.log(median), sigma))

    def _job(self, number: int) -> SynthJob:
        """Creates posting ``job-NNNN``."""
        rng = self._rng
        family = rng.choice(vocab.FAMILIES)
        seniority = rng.choice(vocab.SENIORITY)
        title = " ".join(filter(None, (seniority, rng.choice(family.titles))))
        company = f"{rng.choice(vocab.COMPANY_HEADS)} {rng.choice(vocab.COMPANY_TAILS)}"
        text = job_ad(rng, family, title, company, self._length(JOB_MEDIAN_CHARS, JOB_SIGMA))
        job = Job(id=f"job-{number:04d}", title=title, text=text)
        return SynthJob(job=job, family=family, rubric=rubric(rng, family))

    def request(self, number: int) -> EvaluationRequest:
        """Generates the next request, numbered ``req-NNNNNN``.

        Args:
            number: The sequence number used in the ids.
        """
        rng = self._rng
        posting = rng.choices(self.jobs, weights=self._weights)[0]
        family = posting.family
        if rng.random() >= SAME_FAMILY_SHARE:
            family = rng.choice(vocab.FAMILIES)
        target = self._length(RESUME_MEDIAN_CHARS, RESUME_SIGMA)
        resume = self._writer.resume(family, target)
        candidate = Candidate(
            id=f"cand-{number:06d}",
            text=resume.text,
            name=resume.name,
            headline=resume.headline,
            skills=list(resume.skills),
            years_experience=resume.years,
        )
        return EvaluationRequest(
            id=f"req-{number:06d}",
            candidate=candidate,
            job=posting.job,
            rubric=posting.rubric,
            model=self._model,
            metadata={
                "source": "synth",
                "job_id": posting.job.id,
                "job_family": posting.family.name,
            },
            created_at=self._clock() if self._timestamps else None,
        )

    def requests(self, count: int) -> Iterator[EvaluationRequest]:
        """Generates requests ``req-000001`` to ``req-{count}``."""
        for number in range(1, count + 1):
            yield self.request(number)


def batch_line(
    request: EvaluationRequest,
    model: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> BatchRequestLine:
    """Turns a request into an OpenAI batch input line (``/v1/chat/completions``).

    The job and rubric come before the candidate, so every line for one job shares a prompt
    prefix the engine can cache. The body names a model only when one is given (the request's
    own, else ``model``): the worker routes a body without ``model`` to its default model and
    fills the name in before calling the engine, while a name it does not serve is a dead
    letter, so no made-up default is written.
    """
    job = request.job
    parts = [f"# Job: {job.title} ({job.id})", job.text]
    if request.rubric:
        parts += ["# Rubric", request.rubric]
    parts += [f"# Candidate ({request.candidate.id})", request.candidate.text]
    route = request.model or model
    body: dict[str, Any] = {} if route is None else {"model": route}
    body["messages"] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n\n".join(parts)},
    ]
    body["max_tokens"] = max_tokens
    return BatchRequestLine(custom_id=request.id, method="POST", url=BATCH_CHAT_URL, body=body)
