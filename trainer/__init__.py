"""Trainer: ConTeXT fine-tuning (issue #5). So far the cached in-batch ConTeXT loss (loss.py), checked
against the uncached gradients; the sentence-transformers trainer, data, title encoder and reindex are
still to come. May import core and indexer; nothing that serves queries imports it."""
