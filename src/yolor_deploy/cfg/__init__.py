"""Config parsing into plain frozen dataclasses. No torch import here."""
