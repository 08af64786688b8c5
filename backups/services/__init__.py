"""Use-cases: what views, viewsets, tasks and commands call. Only services call clients."""
