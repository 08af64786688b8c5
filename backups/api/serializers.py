"""Request and response bodies of the backups API (input and output separate)."""

from rest_framework import serializers

from soteria_site.core.names import dns_label_error

from .fields import StrictBooleanField, StrictCharField, StrictSerializer


def _dns_label(value: str) -> str:
    problem = dns_label_error(value)
    if problem:
        raise serializers.ValidationError(problem)
    return value


class NameField(StrictCharField):
    """A namespace or PVC name: a Kubernetes DNS label."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 63)
        kwargs.setdefault("allow_blank", False)
        super().__init__(validators=[_dns_label], trim_whitespace=False, **kwargs)


class BackupRequest(StrictSerializer):
    namespace = NameField()
    pvc = NameField()
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
    pvc = NameField()


class InventoryQuery(serializers.Serializer):
    namespace = NameField(required=False)


class PlannedCallOut(serializers.Serializer):
    call = serializers.CharField()
    target = serializers.CharField()
    args = serializers.DictField()


class BackupResponse(serializers.Serializer):
    """The contract's Longhorn response; `plan` is added to dry runs."""

    driver = serializers.CharField()
    volume = serializers.CharField()
    backup = serializers.CharField()
    namespace = serializers.CharField()
    requested_by = serializers.CharField()
    dry_run = serializers.BooleanField()
    plan = PlannedCallOut(many=True, required=False)


class PvcOutcomeOut(serializers.Serializer):
    pvc = serializers.CharField()
    status = serializers.ChoiceField(choices=["success", "failed", "skipped", "planned"])
    volume = serializers.CharField(allow_blank=True)
    backup = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True, help_text="stable error code when failed or skipped")
    detail = serializers.CharField(allow_blank=True)
    plan = PlannedCallOut(many=True, required=False)


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
    last_backup_at = serializers.CharField(allow_null=True)
    last_backup_age_hours = serializers.FloatField(allow_null=True)
    backup_count = serializers.IntegerField()
    healthy = serializers.BooleanField()
    health_reason = serializers.CharField()


class InventoryNamespaceOut(serializers.Serializer):
    name = serializers.CharField()
    pvcs = InventoryPvcOut(many=True)


class InventoryResponse(serializers.Serializer):
    generated_at = serializers.CharField()
    namespaces = InventoryNamespaceOut(many=True)


class BackupRecordOut(serializers.Serializer):
    name = serializers.CharField()
    snapshot = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True)
    state = serializers.CharField(allow_blank=True)
    progress = serializers.IntegerField()
    created = serializers.CharField(allow_null=True)
    size = serializers.CharField(allow_blank=True)
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True))
    backup_mode = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)


class BackupsResponse(serializers.Serializer):
    namespace = serializers.CharField()
    pvc = serializers.CharField()
    volume = serializers.CharField()
    backups = BackupRecordOut(many=True)


class RestoreRequest(StrictSerializer):
    namespace = NameField()
    pvc = NameField()
    snapshot = StrictCharField(required=False, allow_blank=True, default="latest", max_length=253,
                               help_text="latest (or blank): the newest Completed backup; else a backup or "
                                         "snapshot name of this PVC")
    backup_url = StrictCharField(required=False, allow_blank=True, default="", max_length=2048,
                                 help_text="a Longhorn backup URL of this PVC's own volume, instead of snapshot")
    target_namespace = NameField(required=False, allow_blank=True, default="")
    target_pvc = NameField()
    dry_run = StrictBooleanField(required=False, default=False)


class NamespaceRestoreRequest(StrictSerializer):
    namespace = NameField()
    target_namespace = NameField(required=False, allow_blank=True, default="")
    target_prefix = StrictCharField(required=False, allow_blank=True, default="", max_length=62, trim_whitespace=False)
    snapshot = StrictCharField(required=False, allow_blank=True, default="", max_length=253)
    dry_run = StrictBooleanField(required=False, default=False)


class RestoreResponse(serializers.Serializer):
    driver = serializers.CharField()
    namespace = serializers.CharField()
    pvc = serializers.CharField()
    snapshot = serializers.CharField()
    backup = serializers.CharField()
    backup_url = serializers.CharField()
    backup_created = serializers.CharField(allow_null=True)
    source_volume = serializers.CharField()
    target_namespace = serializers.CharField()
    target_pvc = serializers.CharField()
    volume = serializers.CharField()
    pv = serializers.CharField()
    storage_class = serializers.CharField(allow_blank=True)
    size = serializers.CharField()
    backup_size = serializers.CharField(allow_blank=True, help_text="the backup's volume size (what Longhorn "
                                        "restores); blank when unknown")
    source_size = serializers.CharField(allow_blank=True, help_text="the source PVC's size now")
    size_note = serializers.CharField(allow_blank=True, help_text="set when the restored claim is smaller "
                                      "than its source")
    requested_by = serializers.CharField()
    dry_run = serializers.BooleanField()
    plan = PlannedCallOut(many=True, required=False)


class RestoreOutcomeOut(serializers.Serializer):
    pvc = serializers.CharField()
    target_pvc = serializers.CharField()
    status = serializers.ChoiceField(choices=["planned", "restored", "skipped", "failed"])
    error = serializers.CharField(allow_blank=True)
    detail = serializers.CharField(allow_blank=True)
    backup = serializers.CharField(allow_blank=True)
    backup_created = serializers.CharField(allow_null=True)
    volume = serializers.CharField(allow_blank=True)


class RestoreTotalsOut(serializers.Serializer):
    total = serializers.IntegerField()
    planned = serializers.IntegerField()
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
    volume = serializers.CharField()
    source = serializers.CharField(allow_blank=True, help_text="namespace/pvc restored from; blank when the "
                                                                "caller may not view that namespace")
    backup = serializers.CharField(allow_blank=True)
    state = serializers.ChoiceField(choices=["restoring", "done", "failed", "volume missing", "unknown"])
    progress = serializers.IntegerField(allow_null=True)
    detail = serializers.CharField(allow_blank=True)


class RestoreStatusResponse(serializers.Serializer):
    restores = RestoreStatusOut(many=True)
