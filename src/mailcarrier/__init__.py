"""mailcarrier"""
