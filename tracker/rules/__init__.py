"""Topic rules: the query language, rule files and the entity catalogue, the matcher (phrases,
entities, references resolved to their organisations, roundup sections), the per-topic
classifier that confirms candidates, explanations, and scoring rules on labelled sets.

May import ``core`` only.
"""
