"""Batch inference at any size: one shard of an input per process, on a cloud's job engine or locally."""
