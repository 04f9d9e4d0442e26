"""Prompts for synthetic training data, versioned: a row records the prompt version that made it."""

from __future__ import annotations

from typing import Sequence

__all__ = ["PROMPT_VERSION", "SYSTEM", "skill_prompt", "multi_prompt", "negative_prompt", "repair_prompt"]

PROMPT_VERSION = "synth-1"

SYSTEM = (
    "You write realistic sentences from English job advertisements. "
    "Answer with a JSON object only, no prose, exactly in the requested shape."
)


def skill_prompt(label: str, description: str, alt_labels: Sequence[str], n: int) -> str:
    alts = ", ".join(alt_labels[:8]) or "none"
    return (
        f"Skill: {label}\nDefinition: {description}\nOther names: {alts}\n\n"
        f"Write {n} different sentences, as they would appear in job ads, that each require this skill. "
        "Vary the wording, the sector and the sentence length. Name the skill or one of its other names in "
        "at most a third of them; in the rest only imply it through the tasks or results it involves. "
        'Return {"sentences": ["...", "..."]}.'
    )


def multi_prompt(group: str, skills: Sequence[tuple[str, str]], n: int) -> str:
    listing = "\n".join(f"{i + 1}. {label}: {desc}" for i, (label, desc) in enumerate(skills))
    return (
        f"These skills belong to one ESCO group, '{group}':\n{listing}\n\n"
        f"Write {n} different job-ad sentences. Each sentence must require two to four of the skills above "
        "together, in a way a real employer would plausibly combine them. For each sentence list the numbers "
        'of the skills it requires. Return {"items": [{"sentence": "...", "skills": [1, 3]}, ...]}.'
    )


def negative_prompt(topic: str, n: int) -> str:
    return (
        f"Write {n} different sentences from job ads about {topic}. They must not ask for any skill, "
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
