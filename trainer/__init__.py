"""Trainer: ConTeXT fine-tuning and the title encoder (issue #5). Empty for now: the walking skeleton
serves a zero-shot model; this package may import core and indexer, never the other way round."""
