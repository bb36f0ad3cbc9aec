"""Plumbing shared by every service: settings, logging, Redis, metrics, HTTP serving, contracts."""
