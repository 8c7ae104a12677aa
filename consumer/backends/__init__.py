"""Inference engine backends behind one protocol."""
