"""Specs -> lazy tasks: expansion, request identity, file names, dry run, urls_file checks."""
