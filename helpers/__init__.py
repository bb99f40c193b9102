"""Inside the CNN: reference implementations for the course notebooks."""
from .runtime import environment_report, fast, get_device, is_fast, is_grading, progress, seed_everything

__version__ = "0.1.0"
