"""Prompts for synthetic training data, versioned: a row records the prompt version that made it."""

from __future__ import annotations

from typing import Sequence

__all__ = ["PROMPT_VERSION", "SYSTEM", "skill_prompt", "multi_prompt", "negative_prompt", "repair_prompt"]

#: synth-2 asks for an explicit half/half split between sentences that name the skill and ones that only imply
#: it (synth-1 asked for "at most a third" named; the 1.5B local model named it in about 6 of 10 anyway).
PROMPT_VERSION = "synth-2"

SYSTEM = (
    "You write realistic sentences from English job advertisements. "
    "Answer with a JSON object only, no prose, exactly in the requested shape."
)


def _short(text: str, limit: int = 300) -> str:
    """The first ``limit`` characters, cut at a word: a local model reads the prompt at ~60 tokens/s."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def skill_prompt(label: str, description: str, alt_labels: Sequence[str], n: int) -> str:
    alts = ", ".join(alt_labels[:6]) or "none"
    description = _short(description)
    return (
        f"Skill: {label}\nDefinition: {description}\nOther names: {alts}\n\n"
        f"Write {n} different sentences, as they would appear in job ads, that each require this skill. "
        "Vary the wording and the sector; keep each sentence under 20 words, as job ads do. "
        f"In the first {(n + 1) // 2} sentences name the skill plainly, the way an employer would. "
        f"In the other {n // 2} never use the skill's name or any of its other names: describe only the tasks, "
        "tools or results that need it. "
        'Return {"sentences": ["...", "..."]}.'
    )


def multi_prompt(group: str, skills: Sequence[tuple[str, str]], n: int) -> str:
    listing = "\n".join(f"{i + 1}. {label}: {_short(desc, 160)}" for i, (label, desc) in enumerate(skills))
    return (
        f"These skills belong to one ESCO group, '{group}':\n{listing}\n\n"
        f"Write {n} different job-ad sentences, each under 25 words. Each sentence must require two to four of the skills above "
        "together, in a way a real employer would plausibly combine them. For each sentence list the numbers "
        'of the skills it requires. Return {"items": [{"sentence": "...", "skills": [1, 3]}, ...]}.'
    )


def negative_prompt(topic: str, n: int) -> str:
    return (
        f"Write {n} different sentences from job ads about {topic}, each under 20 words. They must not ask for any skill, "
        "knowledge or qualification from the candidate (no requirements, no tasks). "
        'Return {"sentences": ["...", "..."]}.'
    )


def repair_prompt(error: str) -> str:
    return f"Your last answer could not be used ({error}). Answer again with the JSON object only, in the requested shape."


NEGATIVE_TOPICS = (
    "employee benefits and perks", "the company's history and mission", "office location and commuting",
    "how to apply and the hiring timeline", "salary range and contract type", "working hours and holidays",
    "diversity and equal-opportunity statements", "the team's culture and social events",
)
