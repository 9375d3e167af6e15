"""Grading the labs: the material each audience gets (handout.py), the
platforms' autograders (export.py)."""
