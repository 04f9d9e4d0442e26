"""jobskills core: config, ESCO, encoder, ConTeXT scoring, Qdrant store factory, CLI root."""

__version__ = "0.1.0"
