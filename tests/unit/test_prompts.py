"""PromptTemplate: prefix order, versioning, user templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.errors import ConfigError
from consumer.prompts import PromptTemplate, evaluation_schema
from consumer.schemas import EvaluationRequest

pytestmark = pytest.mark.timeout(10)

REQUEST = EvaluationRequest.model_validate(
    {
        "id": "r1",
        "candidate": {"id": "c1", "text": "Ten years of {braces} and Kafka."},
        "job": {"id": "j1", "title": "Engineer", "text": "Build pipelines."},
    }
)


def test_job_and_rubric_come_before_the_candidate() -> None:
    system, user = PromptTemplate().render(REQUEST)
    assert system["role"] == "system"
    text = user["content"]
    assert text.index("Build pipelines.") < text.index("Rubric") < text.index("Ten years")
    assert "{braces}" in text  # candidate text is data, never a template


def test_two_candidates_of_one_job_share_the_whole_prefix() -> None:
    other = REQUEST.model_copy(
        update={"candidate": REQUEST.candidate.model_copy(update={"text": "Other."})}
    )
    a = PromptTemplate().render(REQUEST)[1]["content"]
    b = PromptTemplate().render(other)[1]["content"]
    shared = len(a) - len("Ten years of {braces} and Kafka.")
    assert a[:shared] == b[:shared]


def test_user_template_file_sets_version_and_text(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        'version = "acme-3"\nsystem = "Judge."\nuser = "{job_text} || {candidate_text}"\n'
    )
    template = PromptTemplate.load(path)
    assert template.version == "acme-3"
    assert (
        template.render(REQUEST)[1]["content"]
        == "Build pipelines. || Ten years of {braces} and Kafka."
    )


def test_user_template_with_unknown_field_is_rejected_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('version = "x"\nuser = "{salary}"\n')
    with pytest.raises(ConfigError, match="salary"):
        PromptTemplate.load(path)


def test_schema_is_self_contained_and_bounded() -> None:
    schema = evaluation_schema()
    assert "$defs" not in schema
    assert "$ref" not in str(schema)
    assert schema["properties"]["score"]["maximum"] == 100
    assert set(schema["properties"]["recommendation"]["enum"]) == {
        "strong_yes",
        "yes",
        "maybe",
        "no",
        "strong_no",
    }
