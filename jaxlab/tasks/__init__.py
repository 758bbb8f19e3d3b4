"""Tasks by name, or a user's own by import path ('my_pkg.tasks:MyTask').

See `jaxlab.tasks.base` for the interface; this package re-exports the registry
(registry.py).
"""

from jaxlab.tasks.registry import REGISTRY, create
