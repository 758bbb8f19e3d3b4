"""The process: XLA options, the compilation cache, multi-host start, background work,
and whether a process still runs."""
