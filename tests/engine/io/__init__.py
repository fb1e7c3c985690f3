"""Tests of engine/io/."""
