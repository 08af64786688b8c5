"""Output fields shared by every app's API serializers."""

from rest_framework import serializers

from soteria_site.core.timeparse import format_time


class TimeField(serializers.DateTimeField):
    """A datetime as the API answers it: UTC ISO-8601 with a `Z`, to the second
    (`format_time`); null stays null. The schema shows it as a date-time string."""

    def to_representation(self, value):
        return format_time(value)
