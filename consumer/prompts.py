"""The candidate-evaluation prompt: versioned, job first and candidate last.

Every candidate of one job shares the system message and the job/rubric part of the
user message, so the engine's prefix cache computes that prefix once per job; only
the candidate's part is new work for each request. The template version is recorded
in every result so scores from different prompts are never compared unknowingly.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumer.errors import ConfigError
from consumer.schemas import Evaluation, EvaluationRequest

DEFAULT_RUBRIC = (
    "Weigh required skills and relevant experience most, then seniority and scope, then "
    "education and certifications. Do not reward length or buzzwords. Ignore name, age, "
    "gender, nationality and any other protected characteristic."
)

_SYSTEM = (
    "You are an experienced technical recruiter. You evaluate one candidate against one "
    "job and answer only with a JSON object with the fields strengths (one to three short "
    "phrases on how the candidate fits the job), concerns (one to three short phrases on "
    "gaps or risks), summary (two sentences), score (integer 0-100: 0 no fit, 50 partial, "
    "100 ideal) and recommendation (strong_yes, yes, maybe, no or strong_no)."
)

_USER = """# Job: {job_title} ({job_id})

{job_text}

# Rubric

{rubric}

# Candidate {candidate_id}

{candidate_text}"""

_REPAIR = (
    "Your previous reply was not valid: {error}. Reply again with only the JSON object, "
    "following the schema exactly."
)

_FIELDS = ("job_title", "job_id", "job_text", "rubric", "candidate_id", "candidate_text")


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A versioned pair of system and user templates (``str.format`` fields)."""

    version: str = "eval-v3"
    system: str = _SYSTEM
    user: str = _USER
    repair: str = _REPAIR

    @classmethod
    def load(cls, path: Path) -> PromptTemplate:
        """Reads a template file: TOML with ``version``, ``system``, ``user`` (and ``repair``).

        Raises:
            ConfigError: the file is missing, not TOML, or uses an unknown field.
        """
        try:
            data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
            template = cls(**{k: str(v) for k, v in data.items()})
        except (OSError, tomllib.TOMLDecodeError, TypeError) as exc:
            raise ConfigError(f"prompt template {path}: {exc}") from exc
        template._check()
        return template

    def _check(self) -> None:
        sample = dict.fromkeys(_FIELDS, "x")
        try:
            self.user.format_map(sample)
            self.system.format_map(sample)
            self.repair.format_map({"error": "x"})
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"prompt template {self.version}: unknown field {exc}; fields are {_FIELDS}"
            ) from exc

    def render(self, request: EvaluationRequest) -> tuple[dict[str, str], ...]:
        """The chat messages for one request, shared prefix first."""
        fields = {
            "job_title": request.job.title,
            "job_id": request.job.id,
            "job_text": request.job.text,
            "rubric": request.rubric or DEFAULT_RUBRIC,
            "candidate_id": request.candidate.id,
            "candidate_text": request.candidate.text,
        }
        return (
            {"role": "system", "content": self.system.format_map(fields)},
            {"role": "user", "content": self.user.format_map(fields)},
        )

    def repair_messages(
        self, messages: tuple[dict[str, str], ...], reply: str, error: str
    ) -> tuple[dict[str, str], ...]:
        """The conversation for the one repair attempt: the bad reply and what is wrong."""
        return (
            *messages,
            {"role": "assistant", "content": reply},
            {"role": "user", "content": self.repair.format_map({"error": error[:1000]})},
        )


def evaluation_schema() -> dict[str, Any]:
    """The `Evaluation` JSON Schema with every ``$ref`` inlined.

    Engines compile the schema into a grammar; a self-contained schema is accepted by
    every one of them (vLLM's xgrammar, llama.cpp, Ollama) without ``$defs`` support.
    """
    schema = Evaluation.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


def without_string_bounds(node: Any) -> Any:
    """``node`` (a JSON Schema) without its strings' ``maxLength`` (``engine.string_bounds``).

    The engine's grammar then has one state per string instead of one per character position;
    the worker still checks the bounds when it validates the reply.
    """
    if isinstance(node, dict):
        string = node.get("type") == "string"
        return {
            k: without_string_bounds(v)
            for k, v in node.items()
            if not (string and k == "maxLength")
        }
    if isinstance(node, list):
        return [without_string_bounds(v) for v in node]
    return node
