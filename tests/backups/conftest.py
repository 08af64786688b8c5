from .fake_cluster import cluster  # noqa: F401
