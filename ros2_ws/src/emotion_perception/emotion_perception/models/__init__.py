"""Backbones, emotion heads and the registry of model profiles."""
