"""Logging a run where a team already looks (MLflow): see jaxlab.tracking.tracker."""

from jaxlab.tracking.tracker import BACKENDS, NullTracker, Tracker, check_installed, prepare, start

__all__ = ['BACKENDS', 'NullTracker', 'Tracker', 'check_installed', 'prepare', 'start']
