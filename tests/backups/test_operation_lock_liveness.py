"""The per-PVC operation lock of a process that was killed while it held it is taken over at
once, not after the lock's expiry; a live holder's lock, or one of another host, still refuses."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import OperationLock
from backups.services.backup import pvc_lock
from soteria_site.core import liveness
from soteria_site.core.errors import Conflict

pytestmark = pytest.mark.django_db


def _dead_holder() -> str:
    """The holder a process had, once it has exited (as after a SIGKILL)."""
    child = subprocess.run([sys.executable, "-c", "from soteria_site.core import liveness; print(liveness.holder())"],
                           capture_output=True, text=True, check=True, timeout=60)
    return child.stdout.strip()


def _held_by(holder: str) -> None:
    OperationLock.objects.create(key="backup:ai/data", holder=holder,
                                 expires_at=timezone.now() + timedelta(minutes=3))


def test_a_lock_of_a_killed_process_is_taken_over():
    dead = _dead_holder()
    assert dead.count(":") == 2 and liveness.is_dead(dead)
    _held_by(dead)
    with pvc_lock("ai", "data"):
        assert OperationLock.objects.get(key="backup:ai/data").holder == liveness.holder()
    assert not OperationLock.objects.exists()


@pytest.mark.parametrize("holder", ["this process", "other-host:1:1", ""])
def test_a_lock_of_a_live_or_unknown_holder_refuses(holder):
    _held_by(liveness.holder() if holder == "this process" else holder)
    assert not liveness.is_dead(OperationLock.objects.get().holder)
    with pytest.raises(Conflict) as info, pvc_lock("ai", "data"):
        pass
    assert info.value.code == "backup_in_progress"
