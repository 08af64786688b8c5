"""The policy store at the client seam: its Django Storage over the Secret's keys, every write a
compare-and-swap on the Secret's resourceVersion, and the store's read-modify-write retried when
another writer got there first."""

import base64
import json
from dataclasses import replace

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from policies import store
from policies.metrics import POLICY_STORE_ERRORS
from policies.store import OWNER_LABELS, SecretFile, SecretStorage, StaleVersion
from policies.types import Policy
from soteria_site.core import kubernetes
from soteria_site.core.errors import Conflict, UpstreamError
from tests.support.fake_cluster import NOW

# The store remembers the last document it read in the database cache.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings")]


KEY = ("soteria", "soteria-policies")


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """The store's jittered backoff between attempts, without the wait."""
    monkeypatch.setattr(store.time, "sleep", lambda seconds: None)


@pytest.fixture
def storage() -> SecretStorage:
    return storages["policies"]


def _secret(cluster, labels=None, **data: bytes):
    return cluster.create_secret("soteria", {"metadata": {"name": "soteria-policies", "labels": labels or {}},
                                             "data": {k: base64.b64encode(v).decode() for k, v in data.items()}})


def _change_behind_its_back(cluster, **data: bytes):
    """Another writer replaces the Secret: a new resourceVersion."""
    current = cluster.secrets[KEY]
    body = {"metadata": {"name": "soteria-policies", "labels": current.labels},
            "data": {k: base64.b64encode(v).decode() for k, v in {**current.data, **data}.items()}}
    cluster.replace_secret("soteria", "soteria-policies", body)


def _key_deleted_behind_its_back(cluster):
    current = cluster.secrets[KEY]
    body = {"metadata": {"name": "soteria-policies", "labels": current.labels},
            "data": {k: base64.b64encode(v).decode() for k, v in current.data.items() if k != "policies.json"}}
    cluster.replace_secret("soteria", "soteria-policies", body)


def _policy(id_namespace: str, hours: float = 6.0) -> Policy:
    return Policy(namespace=id_namespace, pvc="", interval_hours=hours, enabled=True, retain=None, tags=(),
                  created_at=NOW, updated_at=NOW, updated_by="tester")


def _rewrite(file, content: bytes):
    file.seek(0)
    file.truncate()
    file.write(content)
    return file


# --- the Storage ---------------------------------------------------------------------------------
def test_the_policies_storage_alias_is_the_secret_storage(storage):
    assert isinstance(storage, SecretStorage)
    assert (storage.namespace, storage.secret_name) == KEY


def test_open_reads_a_key_with_the_version_it_was_read_at(cluster, storage):
    secret = _secret(cluster, **{"policies.json": b"{}", "notes.txt": b"n"})
    with storage.open("policies.json") as file:
        assert isinstance(file, SecretFile)
        assert file.read() == b"{}" and file.name == "policies.json"
        assert file.version == secret.resource_version


def test_open_of_a_missing_key_or_secret_is_file_not_found(cluster, storage):
    with pytest.raises(FileNotFoundError):
        storage.open("policies.json")
    _secret(cluster, **{"notes.txt": b"n"})
    with pytest.raises(FileNotFoundError, match="not a key of Secret soteria/soteria-policies"):
        storage.open("policies.json")


def test_open_only_reads(cluster, storage):
    _secret(cluster, **{"policies.json": b"{}"})
    with pytest.raises(ValueError, match="save"):
        storage.open("policies.json", "wb")


def test_saving_the_file_read_replaces_the_key_and_keeps_the_rest_of_the_secret(cluster, storage, monkeypatch):
    _secret(cluster, labels={"team": "ops"}, **{"policies.json": b"old", "notes.txt": b"keep me"})
    annotated = replace(cluster.secrets[KEY], annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"})
    cluster.secrets[KEY] = annotated
    sent = []
    fake_replace = kubernetes.replace_secret
    monkeypatch.setattr(kubernetes, "replace_secret", lambda ns, name, body: sent.append(body) or fake_replace(
        ns, name, body))
    file = storage.open("policies.json")
    assert storage.save("policies.json", _rewrite(file, b"new")) == "policies.json"
    secret = cluster.secrets[KEY]
    assert secret.data == {"policies.json": b"new", "notes.txt": b"keep me"}
    assert secret.labels == {"team": "ops", **OWNER_LABELS}
    [body] = sent
    assert body["metadata"]["resourceVersion"] == file.version
    assert body["metadata"]["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "{}"}


def test_saving_a_file_read_before_the_secret_changed_is_refused(cluster, storage):
    _secret(cluster, **{"policies.json": b"old"})
    file = storage.open("policies.json")
    _change_behind_its_back(cluster, **{"policies.json": b"theirs"})
    with pytest.raises(StaleVersion) as info:
        storage.save("policies.json", _rewrite(file, b"mine"))
    assert info.value.status == 409
    assert cluster.secrets[KEY].data["policies.json"] == b"theirs"


def test_saving_a_file_read_before_the_secret_was_deleted_is_refused(cluster, storage):
    _secret(cluster, **{"policies.json": b"old"})
    file = storage.open("policies.json")
    del cluster.secrets[KEY]
    with pytest.raises(StaleVersion):
        storage.save("policies.json", _rewrite(file, b"mine"))
    assert cluster.secrets == {}


def test_saving_a_new_key_adds_it_to_the_secret(cluster, storage):
    _secret(cluster, **{"notes.txt": b"keep me"})
    assert storage.save("policies.json", ContentFile(b"{}")) == "policies.json"
    assert storage.save("readme.txt", ContentFile("text")) == "readme.txt"
    assert cluster.secrets[KEY].data == {"notes.txt": b"keep me", "policies.json": b"{}", "readme.txt": b"text"}


def test_saving_a_new_key_creates_a_missing_secret_labelled_as_soterias(cluster, storage):
    storage.save("policies.json", ContentFile(b"{}"))
    secret = cluster.secrets[KEY]
    assert secret.data == {"policies.json": b"{}"} and secret.labels == OWNER_LABELS


def test_saving_over_an_existing_key_without_its_version_is_refused(cluster, storage):
    _secret(cluster, **{"policies.json": b"theirs"})
    with pytest.raises(StaleVersion, match="open it and save the file read"):
        storage.save("policies.json", ContentFile(b"mine"))
    assert cluster.secrets[KEY].data["policies.json"] == b"theirs"


def test_a_new_key_created_by_another_writer_first_is_refused(cluster, storage, monkeypatch):
    fake_create = kubernetes.create_secret

    def another_writer_first(namespace, body):
        _secret(cluster, **{"policies.json": b"theirs"})
        return fake_create(namespace, body)
    monkeypatch.setattr(kubernetes, "create_secret", another_writer_first)
    with pytest.raises(StaleVersion):
        storage.save("policies.json", ContentFile(b"mine"))
    assert cluster.secrets[KEY].data["policies.json"] == b"theirs"


def test_a_secret_soteria_may_not_create_is_explained(cluster, storage):
    cluster.fail["create_secret"] = UpstreamError("kubernetes", "forbidden", upstream_status=403)
    with pytest.raises(UpstreamError) as info:
        storage.save("policies.json", ContentFile(b"{}"))
    assert info.value.upstream_status == 403
    assert "soteria/soteria-policies does not exist and Soteria may not create it" in info.value.detail
    assert "app.kubernetes.io/managed-by=soteria" in info.value.detail
    cluster.fail["create_secret"] = UpstreamError("kubernetes", "apiserver down", upstream_status=500)
    with pytest.raises(UpstreamError, match="apiserver down"):
        storage.save("policies.json", ContentFile(b"{}"))


@pytest.mark.parametrize("name", ["../policies.json", "dir/policies.json", "bad key", "x" * 254])
def test_a_name_that_cannot_be_a_secret_key_is_refused(cluster, storage, name):
    with pytest.raises(SuspiciousFileOperation):
        storage.save(name, ContentFile(b"{}"))
    assert cluster.mutating_calls == {}


def test_exists_says_whether_the_key_is_there(cluster, storage):
    assert not storage.exists("policies.json")  # no Secret
    _secret(cluster, **{"notes.txt": b"n"})
    assert not storage.exists("policies.json")
    storage.save("policies.json", ContentFile(b"{}"))
    assert storage.exists("policies.json")


def test_delete_removes_one_key_and_keeps_the_others(cluster, storage):
    _secret(cluster, **{"policies.json": b"{}", "notes.txt": b"keep me"})
    storage.delete("policies.json")
    assert cluster.secrets[KEY].data == {"notes.txt": b"keep me"}


def test_delete_of_a_missing_key_or_secret_writes_nothing(cluster, storage):
    storage.delete("policies.json")
    _secret(cluster, **{"notes.txt": b"n"})
    storage.delete("policies.json")
    assert cluster.mutating_calls == {}


def test_delete_retries_when_another_writer_changes_the_secret(cluster, storage, monkeypatch):
    _secret(cluster, **{"policies.json": b"{}", "notes.txt": b"old"})
    fake_replace = kubernetes.replace_secret
    raced = []

    def one_race(namespace, name, body):
        if not raced:
            raced.append(True)
            _change_behind_its_back(cluster, **{"notes.txt": b"theirs"})
        return fake_replace(namespace, name, body)
    monkeypatch.setattr(kubernetes, "replace_secret", one_race)
    storage.delete("policies.json")
    assert cluster.secrets[KEY].data == {"notes.txt": b"theirs"}


def test_delete_gives_up_when_the_secret_never_stops_changing(cluster, storage, monkeypatch):
    _secret(cluster, **{"policies.json": b"{}"})
    monkeypatch.setattr(kubernetes, "replace_secret", lambda namespace, name, body: (_ for _ in ()).throw(
        Conflict("the object has been modified")))
    with pytest.raises(Conflict, match="gave up deleting policies.json"):
        storage.delete("policies.json")
    assert cluster.secrets[KEY].data == {"policies.json": b"{}"}


@pytest.mark.parametrize("call", [lambda s: s.url("policies.json"), lambda s: s.path("policies.json"),
                                  lambda s: s.listdir(""), lambda s: s.size("policies.json"),
                                  lambda s: s.get_modified_time("policies.json")])
def test_what_a_secret_key_does_not_have_is_not_implemented(storage, call):
    with pytest.raises(NotImplementedError):
        call(storage)


# --- the policies document -----------------------------------------------------------------------
def test_load_of_no_secret_or_no_key_is_no_policies(cluster):
    assert store.load() == []
    _secret(cluster, **{"notes.txt": b"n"})
    assert store.load() == []


@pytest.mark.parametrize("how", ["secret deleted", "key deleted"])
def test_policies_deleted_by_someone_else_are_reported_not_taken_for_none(cluster, how):
    store.update(lambda current: [_policy("ai"), _policy("media")])
    assert len(store.load()) == 2
    if how == "secret deleted":
        del cluster.secrets[KEY]
    else:
        _key_deleted_behind_its_back(cluster)
    before = POLICY_STORE_ERRORS.labels("missing")._value.get()
    with pytest.raises(store.PolicyStoreMissing) as info:
        store.load()
    assert info.value.status == 503 and info.value.code == "policy_store_missing"
    assert "held 2 policies" in info.value.detail
    # Nor does a new policy start a document of its own over the lost two.
    with pytest.raises(store.PolicyStoreMissing):
        store.update(lambda current: current + [_policy("games")])
    assert POLICY_STORE_ERRORS.labels("missing")._value.get() == before + 2
    assert KEY not in cluster.secrets or "policies.json" not in cluster.secrets[KEY].data


def test_first_policies_written_by_another_process_after_this_read_are_not_taken_for_deleted(cluster, monkeypatch):
    """Between this writer's read (no Secret yet) and its look at the remembered document,
    another process creates the Secret and remembers its policies: not a deletion."""
    recall = store._recall

    def another_process_writes_first():
        if KEY not in cluster.secrets:
            content = store.encode([_policy("media")])
            _secret(cluster, **{"policies.json": content})
            store._remember(content, 1, "")
        return recall()

    monkeypatch.setattr(store, "_recall", another_process_writes_first)
    result = store.update(lambda current: [*current, _policy("ai")])
    assert [p.id for p in result] == ["ai", "media"]
    assert [p.id for p in store.load()] == ["ai", "media"]


def test_recover_writes_back_the_policies_last_read(cluster):
    store.update(lambda current: [_policy("ai"), _policy("media")])
    store.load()
    _change_behind_its_back(cluster, **{"notes.txt": b"kept"})
    _key_deleted_behind_its_back(cluster)
    policies, kept = store.recover()
    assert [p.id for p in policies] == ["ai", "media"] and kept == ""
    assert [p.id for p in store.load()] == ["ai", "media"]
    assert cluster.secrets[KEY].data["notes.txt"] == b"kept"


def test_recover_keeps_unreadable_content_under_another_key(cluster):
    store.update(lambda current: [_policy("ai")])
    _change_behind_its_back(cluster, **{"policies.json": b"{oops"})
    policies, kept = store.recover()
    assert [p.id for p in policies] == ["ai"]
    assert kept.startswith("policies.json.unreadable-") and cluster.secrets[KEY].data[kept] == b"{oops"
    with pytest.raises(Conflict) as info:  # readable again: nothing to do
        store.recover()
    assert info.value.code == "nothing_to_recover"


def test_recover_without_a_copy_needs_discard(cluster):
    _secret(cluster, **{"policies.json": b""})
    with pytest.raises(Conflict) as info:
        store.recover()
    assert info.value.code == "no_copy_to_recover"
    assert cluster.secrets[KEY].data["policies.json"] == b""
    policies, kept = store.recover(discard=True)
    assert policies == [] and cluster.secrets[KEY].data[kept] == b""
    assert store.load() == []


def test_update_writes_the_document_sorted_and_returns_it(cluster):
    result = store.update(lambda current: current + [_policy("media"), _policy("ai")])
    assert [p.id for p in result] == ["ai", "media"]
    stored = json.loads(cluster.secrets[KEY].data["policies.json"])
    assert stored["version"] == 1 and [p["id"] for p in stored["policies"]] == ["ai", "media"]
    assert [p.id for p in store.load()] == ["ai", "media"]


def test_update_reapplies_its_change_when_another_writer_got_there_first(cluster):
    store.update(lambda current: [_policy("ai", 1)])
    calls = []

    def change(current):
        calls.append([(p.id, p.interval_hours) for p in current])
        if len(calls) == 1:  # between our read and our write, another writer adds a policy
            other = store.encode([*current, _policy("media", 24)])
            _change_behind_its_back(cluster, **{"policies.json": other})
        return [replace(p, interval_hours=p.interval_hours + 1) if p.id == "ai" else p for p in current]

    result = store.update(change)
    assert calls == [[("ai", 1.0)], [("ai", 1.0), ("media", 24.0)]]
    assert [(p.id, p.interval_hours) for p in result] == [("ai", 2.0), ("media", 24.0)]
    assert [(p.id, p.interval_hours) for p in store.load()] == [("ai", 2.0), ("media", 24.0)]


def test_update_of_a_first_policy_loses_nothing_when_another_writer_makes_the_key_first(cluster):
    _secret(cluster, **{"notes.txt": b"n"})
    calls = []

    def change(current):
        calls.append(len(current))
        if len(calls) == 1:
            _change_behind_its_back(cluster, **{"policies.json": store.encode([_policy("media")])})
        return [*current, _policy("ai")]

    store.update(change)
    assert calls == [0, 1]
    assert [p.id for p in store.load()] == ["ai", "media"]


def test_update_gives_up_after_its_attempts_and_counts_the_contention(cluster, monkeypatch):
    store.update(lambda current: [_policy("ai")])
    monkeypatch.setattr(store, "ATTEMPTS", 3)
    before = POLICY_STORE_ERRORS.labels("contention")._value.get()

    def always_raced(current):
        _change_behind_its_back(cluster, **{"policies.json": store.encode([*current, _policy("media")])})
        return current

    with pytest.raises(Conflict) as info:
        store.update(always_raced)
    assert info.value.code == "policy_conflict" and "kept changing" in info.value.detail
    assert POLICY_STORE_ERRORS.labels("contention")._value.get() == before + 1


@pytest.mark.parametrize(("content", "reason"), [(b"{not json", "invalid_json"),
                                                 (b'{"version": 2, "policies": []}', "unknown_version"),
                                                 (b'{"version": 1, "policies": [{"namespace": "ai"}]}',
                                                  "invalid_policy")])
def test_an_unreadable_document_is_counted_and_never_overwritten(cluster, content, reason):
    _secret(cluster, **{"policies.json": content})
    before = POLICY_STORE_ERRORS.labels(reason)._value.get()
    with pytest.raises(store.PolicyStoreUnreadable) as info:
        store.update(lambda current: [_policy("ai")])
    assert info.value.status == 503 and "Secret soteria/soteria-policies key policies.json" in info.value.detail
    assert POLICY_STORE_ERRORS.labels(reason)._value.get() == before + 1
    assert cluster.secrets[KEY].data["policies.json"] == content
    assert cluster.calls["replace_secret"] == 0


def test_secret_is_the_policy_secret_as_it_is_now(cluster):
    assert store.secret() is None
    made = _secret(cluster)
    assert store.secret() == made
