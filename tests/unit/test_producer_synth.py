"""RequestSynthesizer: deterministic, contract-valid requests of realistic length."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from datetime import UTC, datetime

import pytest

from consumer.schemas import BatchRequestLine, EvaluationRequest, parse_request
from producer.synth import (
    JOB_MEDIAN_CHARS,
    RESUME_MEDIAN_CHARS,
    SYSTEM_PROMPT,
    RequestSynthesizer,
    batch_line,
)

pytestmark = pytest.mark.timeout(60)


def dump(requests: list[EvaluationRequest]) -> list[str]:
    """The JSONL lines ``synth`` writes."""
    return [request.model_dump_json(exclude_none=True) for request in requests]


def test_same_seed_same_requests_and_prefixes_do_not_depend_on_count() -> None:
    first = dump(list(RequestSynthesizer(seed=11).requests(20)))
    assert first == dump(list(RequestSynthesizer(seed=11).requests(20)))
    assert first[:5] == dump(list(RequestSynthesizer(seed=11).requests(5)))
    assert first != dump(list(RequestSynthesizer(seed=12).requests(20)))


def test_generation_uses_no_global_random_state() -> None:
    import random

    random.seed(1)
    before = random.random()
    random.seed(1)
    list(RequestSynthesizer(seed=3).requests(3))
    assert random.random() == before


def test_lengths_follow_the_target_medians() -> None:
    synthesizer = RequestSynthesizer(seed=5, jobs=120)
    requests = list(synthesizer.requests(300))
    resumes = [len(request.candidate.text) for request in requests]
    ads = [len(job.job.text) for job in synthesizer.jobs]
    assert statistics.median(resumes) == pytest.approx(RESUME_MEDIAN_CHARS, rel=0.12)
    assert statistics.median(ads) == pytest.approx(JOB_MEDIAN_CHARS, rel=0.12)
    # Lognormal spread: a real tail on both sides, not a fixed size.
    assert min(resumes) < 0.6 * RESUME_MEDIAN_CHARS < 1.6 * RESUME_MEDIAN_CHARS < max(resumes)


def test_candidates_share_a_limited_set_of_jobs() -> None:
    requests = list(RequestSynthesizer(seed=2, jobs=7).requests(200))
    per_job = Counter(request.job.id for request in requests)
    assert len(per_job) <= 7
    assert per_job.most_common(1)[0][1] >= 200 / 7
    texts = {request.job.id: request.job.text for request in requests}
    assert all(request.job.text == texts[request.job.id] for request in requests)


def test_requests_are_valid_and_ids_are_sequential() -> None:
    requests = list(RequestSynthesizer(seed=9).requests(12))
    for number, request in enumerate(requests, start=1):
        wire = request.model_dump_json(exclude_none=True).encode()
        assert parse_request(wire) == request
        assert request.id == f"req-{number:06d}"
        assert request.candidate.id.startswith("cand-")
        assert re.fullmatch(r"job-\d{4}", request.job.id)
        assert request.created_at is None


def test_resumes_have_the_usual_sections() -> None:
    text = RequestSynthesizer(seed=4).request(1).candidate.text
    for heading in ("## Summary", "## Experience", "## Education", "## Skills"):
        assert heading in text
    assert re.search(r"[A-Z][a-z]{2} \d{4} – (Present|[A-Z][a-z]{2} \d{4})", text)  # noqa: RUF001
    assert text.count("\n- ") >= 3


def test_timestamps_only_when_asked() -> None:
    moment = datetime(2025, 5, 1, tzinfo=UTC)
    stamped = RequestSynthesizer(seed=1, timestamps=True, clock=lambda: moment).request(1)
    assert stamped.created_at == moment


def test_batch_lines_put_the_job_before_the_candidate() -> None:
    request = RequestSynthesizer(seed=6).request(1)
    line = batch_line(request, model="m", max_tokens=256)
    assert isinstance(parse_request(line.model_dump_json().encode()), BatchRequestLine)
    assert line.custom_id == request.id
    assert (line.method, line.url) == ("POST", "/v1/chat/completions")
    assert set(line.body) == {"model", "messages", "max_tokens"}
    assert (line.body["model"], line.body["max_tokens"]) == ("m", 256)
    system, user = line.body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    content = user["content"]
    assert content.index(request.job.text) < content.index(request.candidate.text)
