"""Fakes of the outside services Atelier talks to, for the black-box tests (standard library only)."""
