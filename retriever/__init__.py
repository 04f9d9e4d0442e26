"""Retriever: candidates, exact ConTeXT rerank, threshold, redundancy filter, evidence; search and titles."""
