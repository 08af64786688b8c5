"""Fixed facts of the emulated installation: versions, backup target, node."""

from ..config import NODE_NAME

# --version -> what current-longhorn-version reports.
LONGHORN_VERSIONS = {"1.7": "v1.7.2", "1.8": "v1.8.1"}
BACKUP_TARGET = "default"
BACKUP_TARGET_URL = "s3://backupbucket@us-east-1/"
BACKUP_TARGET_SECRET = "longhorn-backup-credentials"
BACKUP_POLL_INTERVAL = 300
NODE = NODE_NAME
