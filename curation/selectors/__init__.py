"""Reads. Each selector decides what the given user may see."""
