# nbgrader looks for nbgrader_config.py in the folder it is started from; the course settings live
# in grading/nbgrader_config.py (one place).  Run nbgrader commands from the repository root.
load_subconfig("grading/nbgrader_config.py")  # noqa: F821 - provided by traitlets
