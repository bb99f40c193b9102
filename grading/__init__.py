"""Instructor toolbox: nbgrader configuration and the ``python -m grading`` command line."""
