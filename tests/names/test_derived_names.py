"""Names Soteria derives from Kubernetes names: within their limits, stable, collision-free,
and unchanged when they already fit (so names Soteria gave before stay the same)."""

import re
from datetime import datetime, timezone

import pytest

from backups.drivers.longhorn_snapshots import SNAPSHOT_NAME_MAX, is_own, snapshot_name, snapshot_time
from soteria_site.core.events import event_name
from soteria_site.core.names import (
    DNS_SUBDOMAIN_MAX,
    HASH_CHARS,
    dns_label_error,
    dns_subdomain_error,
    fit_name,
    job_name,
    job_secret_name,
    label_value,
    label_value_error,
)

WHEN = datetime(2026, 4, 12, 15, 30, 0, tzinfo=timezone.utc)
LONGEST_PVC = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
NAMESPACE = "n" * 63


def long_pvc(tail: str, length: int = 200) -> str:
    """A valid PVC name of `length` characters that ends in `tail`."""
    return "p" * (length - len(tail)) + tail


def test_a_name_that_fits_is_unchanged():
    assert fit_name("soteria-backup-ai-db", 63, suffix="-20260412-153000") == "soteria-backup-ai-db-20260412-153000"
    assert label_value("ai.llm-cache") == "ai.llm-cache"
    assert snapshot_name("ai", "llm-cache", WHEN) == "soteria-backup-ai-llm-cache-20260412-153000"


@pytest.mark.parametrize("limit", [32, 40, 63, 253])
def test_a_long_name_fits_its_limit_and_keeps_its_start_and_suffix(limit):
    base = "soteria-backup-" + LONGEST_PVC + "-more"
    name = fit_name(base, limit, suffix="-20260412-153000")
    assert len(name) == limit
    assert name.endswith("-20260412-153000")
    head = name[: -len("-20260412-153000") - HASH_CHARS - 1]
    assert base.startswith(head) and not head.endswith(("-", "."))
    assert re.fullmatch(rf"-[0-9a-f]{{{HASH_CHARS}}}", name[len(head): len(head) + HASH_CHARS + 1])


def test_the_same_input_gives_the_same_name():
    assert fit_name(LONGEST_PVC, 63) == fit_name(LONGEST_PVC, 63)
    assert snapshot_name(NAMESPACE, LONGEST_PVC, WHEN) == snapshot_name(NAMESPACE, LONGEST_PVC, WHEN)


def test_long_names_sharing_a_start_stay_distinct():
    first, second = long_pvc("-one"), long_pvc("-two")
    assert first[:190] == second[:190]
    assert fit_name(first, 63) != fit_name(second, 63)
    assert label_value(f"ai.{first}") != label_value(f"ai.{second}")
    assert snapshot_name("ai", first, WHEN) != snapshot_name("ai", second, WHEN)
    assert job_name("backup", first, WHEN) != job_name("backup", second, WHEN)


def test_a_cut_never_ends_on_a_dot_or_dash():
    # The cut falls right after a '.' (and after a '-'): both are trimmed before the hash.
    for base in ("a" * 51 + "." + "b" * 40, "a" * 51 + "-" + "b" * 40, "a" * 50 + ".-" + "b" * 40):
        name = fit_name(base, 63)
        assert len(name) <= 63 and not dns_subdomain_error(name) and not label_value_error(name), name


def test_a_suffix_with_no_room_is_a_programming_error():
    with pytest.raises(ValueError):
        fit_name("a" * 100, 15, suffix="-20260412-153000")


def test_snapshot_names_of_long_and_dotted_pvcs_stay_soterias_and_keep_their_time():
    for pvc in ("data.primary-2026", long_pvc(""), LONGEST_PVC):
        name = snapshot_name(NAMESPACE, pvc, WHEN)
        assert len(name) <= SNAPSHOT_NAME_MAX
        assert not dns_subdomain_error(name), name  # a Snapshot CR is a Kubernetes object
        assert is_own(name) and snapshot_time(name) == WHEN


def test_a_dotted_pvc_keeps_its_dots_in_a_snapshot_name_that_fits():
    assert snapshot_name("ai", "data.primary-2026", WHEN) == "soteria-backup-ai-data.primary-2026-20260412-153000"


def test_restored_from_labels_of_long_names_are_valid_and_distinct():
    values = {label_value(f"{NAMESPACE}.{long_pvc(str(i))}") for i in range(50)}
    assert len(values) == 50
    assert all(not label_value_error(v) and len(v) <= 63 for v in values)


def test_event_names_fit_even_for_the_longest_pvc_name():
    name = event_name(LONGEST_PVC)
    assert len(name) <= DNS_SUBDOMAIN_MAX and not dns_subdomain_error(name)
    assert re.fullmatch(r"[0-9a-f]{16}", name.rpartition(".")[2])
    assert event_name("llm-cache").startswith("llm-cache.") and len(event_name("llm-cache")) == len("llm-cache") + 17


def test_job_names_are_dns_labels_of_at_most_63_with_the_time_at_the_end():
    for pvc in ("db", "data.primary-2026", long_pvc(""), LONGEST_PVC):
        name = job_name("backup", pvc, WHEN)
        assert len(name) <= 63 and not dns_label_error(name), name
        assert name.startswith("soteria-backup-") and name.endswith("-20260412-153000")
        assert job_secret_name(name) == name and not dns_subdomain_error(job_secret_name(name))
    assert job_name("restore", "db", WHEN) == "soteria-restore-db-20260412-153000"


def test_job_names_of_pvcs_differing_only_by_a_dot_differ():
    # Dots are not allowed in a DNS label: `a.b` reads as `a-b`, and the hash tells them apart.
    dotted, dashed = job_name("backup", "data.primary", WHEN), job_name("backup", "data-primary", WHEN)
    assert dashed == "soteria-backup-data-primary-20260412-153000"
    assert dotted != dashed and dotted.startswith("soteria-backup-data-primary-")
