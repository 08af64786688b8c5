"""Console forms. They collect input; the services validate it like the API does."""

from django import forms

from soteria_site.core.names import DNS_SUBDOMAIN_MAX, dns_label_error, dns_subdomain_error


def _dns_label(value: str) -> None:
    problem = dns_label_error(value)
    if problem:
        raise forms.ValidationError(problem)


def _dns_subdomain(value: str) -> None:
    problem = dns_subdomain_error(value)
    if problem:
        raise forms.ValidationError(problem)


class BackupForm(forms.Form):
    tags = forms.CharField(required=False, max_length=2000, help_text="comma-separated: key=value or a word",
                           widget=forms.TextInput(attrs={"placeholder": "reason=maintenance, pre-upgrade"}))
    dry_run = forms.BooleanField(required=False, label="Dry run (plan only)")

    def tag_list(self) -> list[str]:
        return [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]


class RestoreForm(forms.Form):
    # A free string (the service checks it against the PVC's backups); shown as a list of them.
    snapshot = forms.CharField(label="Backup", max_length=253, initial="latest", widget=forms.Select)
    target_namespace = forms.CharField(max_length=63, validators=[_dns_label])
    target_pvc = forms.CharField(max_length=DNS_SUBDOMAIN_MAX, validators=[_dns_subdomain], label="New PVC name")
    dry_run = forms.BooleanField(required=False, label="Dry run (plan only)")

    def __init__(self, *args, backups=(), **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("latest", "latest completed backup")]
        choices += [(b.name, f"{b.name} · {b.created:%Y-%m-%d %H:%M UTC}" if b.created else b.name)
                    for b in backups if b.completed]
        self.fields["snapshot"].widget.choices = choices


class DrillForm(forms.Form):
    dry_run = forms.BooleanField(required=False, label="Dry run (plan only)")


class NamespaceRestoreForm(forms.Form):
    target_namespace = forms.CharField(max_length=63, validators=[_dns_label])
    target_prefix = forms.CharField(max_length=40, required=False, initial="restore-")
    execute = forms.BooleanField(required=False, label="Restore now (unticked: plan only)")
