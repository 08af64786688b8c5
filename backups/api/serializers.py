"""Request and response bodies of the backups API (input and output separate)."""

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from soteria_site.core.names import DNS_SUBDOMAIN_MAX, dns_label_error, dns_subdomain_error
from soteria_site.core.timeparse import format_time
from soteria_site.web.fields import TimeField

from ..types import HEALTH_REASONS
from .fields import StrictBooleanField, StrictCharField, StrictSerializer


def _dns_label(value: str) -> str:
    problem = dns_label_error(value)
    if problem:
        raise serializers.ValidationError(problem)
    return value


def _dns_subdomain(value: str) -> str:
    problem = dns_subdomain_error(value)
    if problem:
        raise serializers.ValidationError(problem)
    return value


class NameField(StrictCharField):
    """A namespace name: a Kubernetes DNS label."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 63)
        kwargs.setdefault("allow_blank", False)
        super().__init__(validators=[_dns_label], trim_whitespace=False, **kwargs)


class PvcNameField(StrictCharField):
    """A PVC name: a Kubernetes DNS subdomain (up to 253 characters, dots allowed)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", DNS_SUBDOMAIN_MAX)
        kwargs.setdefault("allow_blank", False)
        super().__init__(validators=[_dns_subdomain], trim_whitespace=False, **kwargs)


class BackupRequest(StrictSerializer):
    namespace = NameField()
    pvc = PvcNameField()
    tags = serializers.ListField(child=StrictCharField(allow_blank=False), required=False, default=list,
                                 max_length=64, help_text="key=value (label key: value) or a bare word (label: true)")
    dry_run = StrictBooleanField(required=False, default=False)


class NamespaceBackupRequest(StrictSerializer):
    namespace = NameField()
    tags = serializers.ListField(child=StrictCharField(allow_blank=False), required=False, default=list,
                                 max_length=64)
    dry_run = StrictBooleanField(required=False, default=False)


class BackupsQuery(serializers.Serializer):
    namespace = NameField()
    pvc = PvcNameField()


class InventoryQuery(serializers.Serializer):
    # A blank filter (`?namespace=`, as an HTML form sends it) is no filter.
    namespace = NameField(required=False, allow_blank=True, help_text="blank or absent: every namespace")


# Output serializers render every answer from the services' dataclasses
# (`Serializer(result).data`); the schema is generated from the same classes.


class PlannedCallOut(serializers.Serializer):
    call = serializers.CharField()
    target = serializers.CharField()
    args = serializers.DictField()


class BackupResponse(serializers.Serializer):
    """The contract's Longhorn response (from a BackupResult); `plan` is added to dry runs."""

    driver = serializers.CharField()
    volume = serializers.CharField()
    backup = serializers.CharField()
    namespace = serializers.CharField()
    requested_by = serializers.CharField()
    dry_run = serializers.BooleanField()
    plan = PlannedCallOut(many=True, required=False)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not instance.dry_run:
            del data["plan"]
        return data


class PvcOutcomeOut(serializers.Serializer):
    pvc = serializers.CharField()
    status = serializers.ChoiceField(choices=["success", "failed", "skipped", "planned"])
    volume = serializers.CharField(allow_blank=True)
    backup = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True, help_text="stable error code when failed or skipped")
    detail = serializers.CharField(allow_blank=True)
    plan = PlannedCallOut(many=True, required=False, help_text="the calls a planned backup would make")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not instance.plan:
            del data["plan"]
        return data


class TotalsOut(serializers.Serializer):
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    planned = serializers.IntegerField()


class NamespaceBackupResponse(serializers.Serializer):
    driver = serializers.CharField()
    namespace = serializers.CharField()
    requested_by = serializers.CharField()
    dry_run = serializers.BooleanField()
    results = PvcOutcomeOut(many=True)
    totals = TotalsOut()


class InventoryPvcOut(serializers.Serializer):
    namespace = serializers.CharField()
    pvc = serializers.CharField()
    volume = serializers.CharField(allow_blank=True)
    storage_class = serializers.CharField(allow_blank=True)
    capacity = serializers.CharField(allow_blank=True)
    driver = serializers.CharField()
    last_backup_at = TimeField(allow_null=True)
    last_backup_age_hours = serializers.FloatField(allow_null=True)
    backup_count = serializers.IntegerField()
    healthy = serializers.BooleanField()
    health_reason = serializers.ChoiceField(choices=HEALTH_REASONS)
    last_verified_at = TimeField(allow_null=True, help_text="when a restore drill last passed (extension)")
    verify_result = serializers.SerializerMethodField(help_text="the newest finished restore drill's result, null "
                                                                "when none ran (extension)")

    @extend_schema_field(serializers.ChoiceField(choices=["passed", "failed", "unverified", "error"],
                                                 allow_null=True))
    def get_verify_result(self, item):
        return item.verify_result or None


class InventoryNamespaceOut(serializers.Serializer):
    name = serializers.CharField()
    pvcs = InventoryPvcOut(many=True)


@extend_schema_serializer(many=False)  # one object, though a list action answers it
class InventoryResponse(serializers.Serializer):
    generated_at = TimeField()
    namespaces = InventoryNamespaceOut(many=True, source="by_namespace")


def inventory_group_json(group) -> bytes:
    """One namespace of GET /v1/inventory (a NamespaceGroup), as the JSON renderer writes it."""
    return JSONRenderer().render(InventoryNamespaceOut(group).data)


def inventory_json(generated_at, groups: list[bytes]) -> bytes:
    """GET /v1/inventory's JSON put together from its namespaces' JSON (inventory_group_json, in
    order): the same bytes as rendering InventoryResponse whole, without one long encoding."""
    head = JSONRenderer().render({"generated_at": TimeField().to_representation(generated_at)})
    return head[:-1] + b',"namespaces":[' + b",".join(groups) + b"]}"


class BackupSummaryOut(serializers.Serializer):
    """What the run that took a snapshot added, from restic's summary (restic driver only)."""

    files_new = serializers.IntegerField()
    files_changed = serializers.IntegerField()
    files_unmodified = serializers.IntegerField()
    bytes_added = serializers.IntegerField(help_text="new data (file contents and directories) this run "
                                                     "added to the repository: after deduplication, before "
                                                     "compression")
    files_processed = serializers.IntegerField()
    bytes_processed = serializers.IntegerField(help_text="bytes of the files read")


class BackupRecordOut(serializers.Serializer):
    name = serializers.CharField()
    snapshot = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True)
    state = serializers.CharField(allow_blank=True)
    progress = serializers.IntegerField()
    created = TimeField(allow_null=True)
    size = serializers.CharField(allow_blank=True)
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True))
    backup_mode = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    summary = BackupSummaryOut(allow_null=True, help_text="files and bytes the run added, while its restic Job "
                                                          "exists; null otherwise and for Longhorn")


@extend_schema_serializer(many=False)  # one object, though a list action answers it
class BackupsResponse(serializers.Serializer):
    namespace = serializers.CharField()
    pvc = serializers.CharField()
    volume = serializers.CharField()
    backups = BackupRecordOut(many=True)


class RestoreRequest(StrictSerializer):
    namespace = NameField()
    pvc = PvcNameField()
    snapshot = StrictCharField(required=False, allow_blank=True, default="latest", max_length=253,
                               help_text="latest (or blank): the newest Completed backup; else a backup or "
                                         "snapshot name of this PVC")
    backup_url = StrictCharField(required=False, allow_blank=True, default="", max_length=2048,
                                 help_text="a Longhorn backup URL of this PVC's own volume, instead of snapshot")
    target_namespace = NameField(required=False, allow_blank=True, default="")
    target_pvc = PvcNameField()
    dry_run = StrictBooleanField(required=False, default=False)


class NamespaceRestoreRequest(StrictSerializer):
    namespace = NameField()
    target_namespace = NameField(required=False, allow_blank=True, default="")
    target_prefix = StrictCharField(required=False, allow_blank=True, default="", max_length=62, trim_whitespace=False)
    snapshot = StrictCharField(required=False, allow_blank=True, default="", max_length=253)
    dry_run = StrictBooleanField(required=False, default=False)


class RestoreResponse(serializers.Serializer):
    """A RestoreResult: its plan's fields, flat; `plan` (the calls) is added to dry runs."""

    driver = serializers.CharField(source="plan.driver")
    namespace = serializers.CharField(source="plan.namespace")
    pvc = serializers.CharField(source="plan.pvc")
    snapshot = serializers.CharField(source="plan.backup.snapshot")
    backup = serializers.CharField(source="plan.backup.name")
    backup_url = serializers.CharField(source="plan.backup.url")
    backup_created = TimeField(source="plan.backup.created", allow_null=True)
    source_volume = serializers.CharField(source="plan.source_volume")
    target_namespace = serializers.CharField(source="plan.target_namespace")
    target_pvc = serializers.CharField(source="plan.target_pvc")
    volume = serializers.CharField(source="plan.volume")
    pv = serializers.CharField(source="plan.pv")
    storage_class = serializers.CharField(source="plan.storage_class", allow_blank=True)
    size = serializers.CharField(source="plan.size")
    backup_size = serializers.CharField(source="plan.backup_size", allow_blank=True,
                                        help_text="the backup's volume size (what Longhorn restores); blank when "
                                                  "unknown")
    source_size = serializers.CharField(source="plan.source_size", allow_blank=True,
                                        help_text="the source PVC's size now")
    size_note = serializers.CharField(source="plan.size_note", allow_blank=True,
                                      help_text="set when the restored claim is smaller than its source")
    requested_by = serializers.CharField()
    dry_run = serializers.BooleanField()
    plan = PlannedCallOut(source="plan.calls", many=True, required=False)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not instance.dry_run:
            del data["plan"]
        return data


class RestoreOutcomeOut(serializers.Serializer):
    """A RestoreOutcome: the backup chosen, when one was, and the new volume once restored."""

    pvc = serializers.CharField()
    target_pvc = serializers.CharField()
    status = serializers.ChoiceField(choices=["planned", "queued", "restored", "skipped", "failed"],
                                     help_text="queued: handed to the worker, which creates the claim; it then "
                                               "shows in GET /v1/restores")
    error = serializers.CharField(allow_blank=True)
    detail = serializers.CharField(allow_blank=True)
    backup = serializers.SerializerMethodField()
    backup_created = serializers.SerializerMethodField()
    volume = serializers.SerializerMethodField()

    def get_backup(self, outcome) -> str:
        return outcome.plan.backup.name if outcome.plan else ""

    @extend_schema_field(TimeField(allow_null=True))
    def get_backup_created(self, outcome):
        return format_time(outcome.plan.backup.created) if outcome.plan else None

    def get_volume(self, outcome) -> str:
        """Blank until the volume exists (a plan only names it)."""
        return outcome.plan.volume if outcome.plan and outcome.status not in ("planned", "queued") else ""


class RestoreTotalsOut(serializers.Serializer):
    total = serializers.IntegerField()
    planned = serializers.IntegerField()
    queued = serializers.IntegerField()
    restored = serializers.IntegerField()
    skipped = serializers.IntegerField()
    failed = serializers.IntegerField()


class NamespaceRestoreResponse(serializers.Serializer):
    driver = serializers.CharField()
    namespace = serializers.CharField()
    target_namespace = serializers.CharField()
    target_prefix = serializers.CharField(allow_blank=True)
    requested_by = serializers.CharField()
    dry_run = serializers.BooleanField()
    results = RestoreOutcomeOut(many=True)
    totals = RestoreTotalsOut()


class RestoreStatusOut(serializers.Serializer):
    namespace = serializers.CharField()
    pvc = serializers.CharField()
    volume = serializers.CharField(allow_blank=True)
    source = serializers.CharField(allow_blank=True, help_text="namespace/pvc restored from; blank when the "
                                                                "caller may not view that namespace")
    backup = serializers.CharField(allow_blank=True)
    state = serializers.ChoiceField(choices=["restoring", "done", "failed", "volume missing", "unknown"])
    progress = serializers.IntegerField(allow_null=True)
    detail = serializers.CharField(allow_blank=True)


@extend_schema_serializer(many=False)  # one object, though a list action answers it
class RestoreStatusResponse(serializers.Serializer):
    """A list of RestoreStatus, as {"restores": [...]}."""

    restores = RestoreStatusOut(many=True)


class DrillRequest(StrictSerializer):
    namespace = NameField()
    pvc = PvcNameField()
    dry_run = StrictBooleanField(required=False, default=False)


class DrillsQuery(serializers.Serializer):
    namespace = NameField(required=False, allow_blank=True, help_text="blank or absent: every namespace")
    pvc = PvcNameField(required=False, allow_blank=True, help_text="blank or absent: every PVC of the namespace")


class DrillPlanResponse(serializers.Serializer):
    """A started (202) or planned (dry run) restore drill."""

    id = serializers.CharField()
    namespace = serializers.CharField()
    pvc = serializers.CharField()
    driver = serializers.CharField()
    volume = serializers.CharField(allow_blank=True)
    backup = serializers.CharField(source="backup.name")
    backup_created = TimeField(source="backup.created", allow_null=True)
    manifest = serializers.BooleanField(source="has_manifest",
                                        help_text="whether the backup has a manifest to compare with")
    drill_namespace = serializers.CharField()
    scratch_pvc = serializers.CharField()
    requested_by = serializers.CharField()
    dry_run = serializers.BooleanField()
    result = serializers.SerializerMethodField()
    plan = PlannedCallOut(source="calls", many=True, required=False)

    def get_result(self, plan) -> str:
        """`running` once queued; `planned` for a dry run."""
        return "planned" if plan.dry_run else "running"

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not instance.dry_run:
            del data["plan"]
        return data


class DrillCountsOut(serializers.Serializer):
    files = serializers.IntegerField()
    bytes = serializers.IntegerField()
    digest = serializers.CharField(allow_blank=True)


class DrillCleanupOut(serializers.Serializer):
    succeeded = serializers.BooleanField()
    deleted = serializers.ListField(child=serializers.CharField())
    errors = serializers.ListField(child=serializers.CharField())


class DrillScratchOut(serializers.Serializer):
    namespace = serializers.CharField()
    pvc = serializers.CharField()
    volume = serializers.CharField(allow_blank=True, help_text="the Longhorn volume restored into")
    pv = serializers.CharField(allow_blank=True)
    job = serializers.CharField(allow_blank=True, help_text="the restic restore Job")


class DrillOut(serializers.Serializer):
    """One drill as recorded (docs/drills.md)."""

    id = serializers.CharField()
    namespace = serializers.CharField()
    pvc = serializers.CharField()
    driver = serializers.CharField()
    volume = serializers.CharField(allow_blank=True)
    backup = serializers.CharField()
    backup_created = serializers.CharField(allow_null=True)
    started_at = serializers.CharField()
    finished_at = serializers.CharField(allow_null=True)
    result = serializers.ChoiceField(choices=["running", "passed", "failed", "unverified", "error"])
    reason = serializers.CharField(allow_blank=True)
    differences = serializers.ListField(child=serializers.CharField(), help_text="each differing entry, named")
    restored = DrillCountsOut(allow_null=True, help_text="what the verification Job read")
    source = DrillCountsOut(allow_null=True, help_text="the backup's manifest, as recorded at backup time")
    requested_by = serializers.CharField()
    scratch = DrillScratchOut(help_text="what the drill restored into (deleted when it ended)")
    cleanup = DrillCleanupOut(allow_null=True)

    def to_representation(self, instance):
        return super().to_representation({"restored": None, "source": None, "cleanup": None, "finished_at": None,
                                          "differences": [], "reason": "", "volume": "", **instance})


@extend_schema_serializer(many=False)  # one object, though a list action answers it
class DrillsResponse(serializers.Serializer):
    drills = DrillOut(many=True)
