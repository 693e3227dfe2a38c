"""CANU-ReID reference implementation."""
