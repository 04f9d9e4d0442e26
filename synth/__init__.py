"""Synth: LLM-written training sentences through any OpenAI-compatible endpoint (``run``, ``prompts``,
``cli``), and ``local_llm.sh`` to assemble and serve a small instruction-tuned model from PyPI. It does not
import torch, and nothing that serves queries imports it."""
