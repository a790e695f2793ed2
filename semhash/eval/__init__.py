"""Retrieval evaluation: precision over arrays, the literature's protocol, baselines, reports."""
