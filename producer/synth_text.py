"""The prose of synthetic requests: resumes, job ads and rubrics of a target length.

Each text is assembled from sections the way real ones are (summary, experience with dates and
bullet points, education, skills), and bullets are added until the text reaches the length drawn
for it, so lengths follow the chosen distribution while the structure stays plausible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from producer import vocabulary as vocab

# Dates are relative to a fixed year so that a seed gives the same text in any year.
REFERENCE_YEAR = 2025
MAX_ROLES = 6
# A runaway draw from the lognormal tail stays well inside the contract's 200,000 characters.
MAX_TEXT_CHARS = 60_000


@dataclass(frozen=True, slots=True)
class Resume:
    """A resume and the structured fields a candidate record repeats."""

    text: str
    name: str
    headline: str
    skills: tuple[str, ...]
    years: int


def _bullet(rng: random.Random, family: vocab.Family) -> str:
    """One achievement bullet: verb, duty, tools, optional context, measurable result."""
    skill, skill2 = rng.sample(family.skills, 2)
    result = rng.choice(vocab.RESULTS).format(p=rng.randint(8, 60), n=rng.randint(3, 40))
    context = ""
    if rng.random() < 0.4:
        context = ", " + rng.choice(vocab.CONTEXTS).format(n=rng.randint(4, 15))
    return (
        f"- {rng.choice(vocab.VERBS)} {rng.choice(family.duties)} using {skill} and {skill2}"
        f"{context}, {result}."
    )


class ResumeWriter:
    """Writes resumes of a target length for one random generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def resume(self, family: vocab.Family, target: int) -> Resume:
        """Writes one resume of about ``target`` characters (within half a bullet point)."""
        rng = self._rng
        target = min(target, MAX_TEXT_CHARS)
        name = f"{rng.choice(vocab.FIRST_NAMES)} {rng.choice(vocab.LAST_NAMES)}"
        years = min(35, max(1, round(rng.lognormvariate(1.9, 0.6))))
        title = rng.choice(family.titles)
        skills = tuple(rng.sample(family.skills, rng.randint(6, min(12, len(family.skills)))))
        city = rng.choice(vocab.CITIES)
        handle = name.lower().replace(" ", ".").replace("'", "")
        phone = f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
        header = f"# {name}\n{title} · {city} · {handle}@example.com · {phone}"
        summary = self._summary(family, title, years, skills)
        tail = "\n\n".join((self._education(), "## Skills\n" + ", ".join(skills), self._extras()))
        roles = self._roles(family, title, years)
        bullets: list[list[str]] = [[_bullet(rng, family)] for _ in roles]

        def assemble() -> str:
            experience = "\n\n".join(
                role + "\n" + "\n".join(lines) for role, lines in zip(roles, bullets, strict=True)
            )
            return "\n\n".join((header, summary, "## Experience\n" + experience, tail))

        # Recent roles get more bullets, as on real resumes.
        weights = [len(roles) - index for index in range(len(roles))]
        size = len(assemble())
        while (line := _bullet(rng, family)) and size + len(line) // 2 < target:
            rng.choices(bullets, weights=weights)[0].append(line)
            size += len(line) + 1
        text = assemble()
        return Resume(text, name, f"{title} · {years} years", skills, years)

    def _summary(
        self, family: vocab.Family, title: str, years: int, skills: tuple[str, ...]
    ) -> str:
        """The summary section: an opener and two claims."""
        rng = self._rng
        opener = rng.choice(vocab.SUMMARY_OPENERS).format(
            title=title,
            title_lower=title.lower(),
            years=years,
            industry=rng.choice(family.industries),
        )
        claims = [
            claim.format(skill=skills[0], skill2=skills[1])
            for claim in rng.sample(vocab.SUMMARY_CLAIMS, 2)
        ]
        return "## Summary\n" + " ".join([opener, *claims])

    def _roles(self, family: vocab.Family, title: str, years: int) -> list[str]:
        """Role headings with date ranges, most recent first."""
        rng = self._rng
        count = min(MAX_ROLES, 1 + years // 3)
        end_year, end_month = REFERENCE_YEAR, rng.randint(0, 11)
        headings = []
        for index in range(count):
            span = max(1, round(years * 12 / count)) + rng.randint(-4, 4)
            start_total = max(0, end_year * 12 + end_month - max(6, span))
            start_year, start_month = divmod(start_total, 12)
            end = "Present" if index == 0 else f"{vocab.MONTHS[end_month]} {end_year}"
            role_title = title if index == 0 else rng.choice(family.titles)
            company = f"{rng.choice(vocab.COMPANY_HEADS)} {rng.choice(vocab.COMPANY_TAILS)}"
            headings.append(
                f"### {role_title} — {company}, {rng.choice(vocab.CITIES)}\n"
                f"{vocab.MONTHS[start_month]} {start_year} – {end}"  # noqa: RUF001 - resumes use en dashes
            )
            end_year, end_month = divmod(start_total - rng.randint(0, 3), 12)
        return headings

    def _education(self) -> str:
        """The education section: one or two degrees."""
        rng = self._rng
        lines = [
            f"{rng.choice(vocab.DEGREES)} {rng.choice(vocab.FIELDS)} — "
            f"{rng.choice(vocab.UNIVERSITIES)}, {rng.randint(1990, REFERENCE_YEAR - 1)}"
            for _ in range(rng.randint(1, 2))
        ]
        return "## Education\n" + "\n".join(lines)

    def _extras(self) -> str:
        """Languages, sometimes certifications."""
        rng = self._rng
        languages = ", ".join(rng.sample(vocab.LANGUAGES, rng.randint(1, 3)))
        text = f"## Languages\n{languages}"
        if rng.random() < 0.5:
            text += (
                f"\n\n## Certifications\n- {rng.choice(vocab.FIELDS)} certificate, "
                f"{rng.randint(2012, REFERENCE_YEAR)}"
            )
        return text


def job_ad(rng: random.Random, family: vocab.Family, title: str, company: str, target: int) -> str:
    """Writes a job ad of about ``target`` characters."""
    target = min(target, MAX_TEXT_CHARS)
    industry = rng.choice(family.industries)
    must = rng.sample(family.skills, 4)
    head = (
        f"# {title} — {company}\n"
        f"Location: {rng.choice(vocab.CITIES)} ({rng.choice(vocab.WORK_MODES)}) · Full-time\n\n"
        f"## About us\n{company} builds software and services for {industry}. We are a team of "
        f"{rng.randint(20, 900)} people who care about craft, candour and customers.\n\n"
        f"## The role\nAs our {title.lower()} you will own {rng.choice(family.duties)} and shape "
        f"how we work with {must[0]} and {must[1]}."
    )
    duties = [f"- {rng.choice(vocab.JOB_VERBS)} {duty}" for duty in rng.sample(family.duties, 3)]
    wants = [
        f"- {rng.randint(2, 8)}+ years of hands-on experience as a {rng.choice(family.titles)}",
        *(f"- Solid, demonstrable experience with {skill}" for skill in must),
    ]
    benefits = [f"- {item}" for item in rng.sample(vocab.BENEFITS, 4)]
    closing = "## How to apply\nSend your resume; we reply to every application within two weeks."

    def assemble() -> str:
        return "\n\n".join(
            (
                head,
                "## What you'll do\n" + "\n".join(duties),
                "## What we're looking for\n" + "\n".join(wants),
                "## Benefits\n" + "\n".join(benefits),
                closing,
            )
        )

    size = len(assemble())
    while size < target:
        is_duty, line = _job_bullet(rng, family)
        if size + len(line) // 2 >= target:
            break
        (duties if is_duty else wants).append(line)
        size += len(line) + 1
    return assemble()


def _job_bullet(rng: random.Random, family: vocab.Family) -> tuple[bool, str]:
    """One more bullet for a job ad: ``(True, duty)`` or ``(False, requirement)``."""
    skill, skill2 = rng.sample(family.skills, 2)
    if rng.random() < 0.5:
        context = rng.choice(vocab.CONTEXTS).format(n=rng.randint(4, 15))
        duty = rng.choice(family.duties)
        return True, f"- {rng.choice(vocab.JOB_VERBS)} {duty} with {skill} and {skill2}, {context}"
    industry = rng.choice(family.industries)
    return False, f"- Experience with {skill} in {industry}; {skill2} a plus"


def rubric(rng: random.Random, family: vocab.Family) -> str:
    """A short scoring rubric for one posting."""
    must = ", ".join(rng.sample(family.skills, 3))
    depth = rng.choice((30, 40, 50))
    return (
        f"Must have: {must}. Weigh relevant experience {depth}%, skills match "
        f"{90 - depth}%, communication 10%. Penalise unexplained gaps only if longer than a year."
    )
