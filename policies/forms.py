from django import forms

from soteria_site.core.names import DNS_SUBDOMAIN_MAX


class PolicyForm(forms.Form):
    namespace = forms.CharField(max_length=63)
    pvc = forms.CharField(max_length=DNS_SUBDOMAIN_MAX, required=False, help_text="blank: every PVC of the namespace")
    interval_hours = forms.FloatField(min_value=0.0001, max_value=24 * 366, initial=24)
    enabled = forms.BooleanField(required=False, initial=True)
    retain = forms.IntegerField(required=False, min_value=1, max_value=1000, help_text="blank: keep all")
    verify_every_hours = forms.FloatField(required=False, min_value=0.0001, max_value=24 * 366,
                                          label="Restore drill every (hours)", help_text="blank: no restore drills")
    tags = forms.CharField(required=False, max_length=2000, help_text="comma-separated key=value or words")

    def tag_list(self) -> list[str]:
        return [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]
