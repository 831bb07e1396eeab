"""Integrations with other frameworks: `mailcarrier.contrib.django` (an email backend).
Each imports its framework only when it is used."""
