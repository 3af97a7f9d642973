"""Agitation detection from the caller's voice (prosody against a per-call baseline) and words.

Import from the submodules (kept out of this file so that importing the package's
settings does not load heavy libraries).
"""
