from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from backups.api.fields import StrictBooleanField, StrictCharField, StrictSerializer
from backups.api.serializers import NameField, PvcNameField
from soteria_site.web.fields import TimeField


class NumberField(serializers.FloatField):
    default_error_messages = {"invalid": "must be a number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "must be a whole number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class PolicyRequest(StrictSerializer):
    namespace = NameField()
    pvc = PvcNameField(required=False, allow_blank=True, default="",
                    help_text="blank: every PVC of the namespace")
    interval_hours = NumberField(min_value=0.0001, max_value=24 * 366)
    enabled = StrictBooleanField(required=False, default=True)
    retain = StrictIntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=1000,
                                help_text="keep the newest N successful backups this policy made")
    tags = serializers.ListField(child=StrictCharField(allow_blank=False), required=False, default=list,
                                 max_length=64)
    verify_every_hours = NumberField(required=False, allow_null=True, default=None, min_value=0.0001,
                                     max_value=24 * 366,
                                     help_text="run a restore drill of each PVC this often; null or absent: never")


class PolicyQuery(serializers.Serializer):
    """DELETE /v1/policies/?namespace=&pvc= (the contract's form of DELETE /v1/policies/<id>)."""

    namespace = NameField()
    pvc = PvcNameField(required=False, allow_blank=True, default="", help_text="blank: the namespace-wide policy")


class PolicyOut(serializers.Serializer):
    """A PolicyView: the policy's fields and its next due time."""

    id = serializers.CharField(source="policy.id")
    namespace = serializers.CharField(source="policy.namespace")
    pvc = serializers.CharField(source="policy.pvc", allow_blank=True)
    interval_hours = serializers.FloatField(source="policy.interval_hours")
    enabled = serializers.BooleanField(source="policy.enabled")
    retain = serializers.IntegerField(source="policy.retain", allow_null=True)
    tags = serializers.ListField(source="policy.tags", child=serializers.CharField())
    created_at = TimeField(source="policy.created_at", allow_null=True)
    updated_at = TimeField(source="policy.updated_at", allow_null=True)
    updated_by = serializers.CharField(source="policy.updated_by", allow_blank=True)
    last_run_at = TimeField(source="policy.last_run_at", allow_null=True, read_only=True)
    last_result = serializers.CharField(source="policy.last_result", allow_blank=True, read_only=True)
    last_detail = serializers.CharField(source="policy.last_detail", allow_blank=True, read_only=True)
    next_due_at = TimeField(allow_null=True, read_only=True)
    verify_every_hours = serializers.FloatField(source="policy.verify_every_hours", allow_null=True,
                                                help_text="hours between restore drills of each PVC; null: none")
    next_drill_due_at = TimeField(allow_null=True, read_only=True,
                                  help_text="the earliest time one of its PVCs is due for a restore drill")


@extend_schema_serializer(many=False)  # one object, though a list action answers it
class PolicyList(serializers.Serializer):
    """A list of PolicyView, as {"policies": [...], "due_times_as_of": ...}."""

    policies = PolicyOut(many=True)
    due_times_as_of = TimeField(allow_null=True, read_only=True,
                                help_text="when the stored inventory the due times come from was built "
                                          "(the worker refreshes it); null: none is stored yet, so no due times")


class PolicyStoreRecoverRequest(StrictSerializer):
    discard = StrictBooleanField(required=False, default=False,
                                 help_text="start over with no policies instead of the last ones Soteria read")


class PolicyStoreRecovered(serializers.Serializer):
    policies = PolicyOut(many=True)
    kept_unreadable_as = serializers.CharField(allow_blank=True,
                                               help_text="the Secret key now holding the unreadable content; "
                                                         "blank: there was none")
