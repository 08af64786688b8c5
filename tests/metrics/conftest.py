from tests.backups.fake_cluster import cluster  # noqa: F401
