"""Synth: LLM training data through any OpenAI-compatible endpoint (issue #6). Empty for now; it must
not import torch, and nothing that serves queries imports it."""
