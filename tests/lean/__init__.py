"""Tests of the lean submission path (src/mailcarrier/lean/)."""
