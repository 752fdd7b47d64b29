"""Fixtures shared by the whole suite. Area-specific fixtures live in the test modules that use them."""
