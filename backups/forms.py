"""Console forms. They collect input; the services validate it like the API does.

A form that creates or deletes something is sent twice: first to see the plan (a dry run
through the same services as the API), then, with `confirm` and the plan's `digest` in hidden
fields, to carry it out. The second send carries every input again and is validated again; if
the plan it now gets differs from the digest, nothing runs and the new plan is shown."""

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


class Confirmable(forms.Form):
    """The confirmation's two hidden fields: `confirm`, and the digest of the plan that was shown."""

    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)
    digest = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    # The inputs a confirmation carries again (the hidden copies of the plan's inputs).
    carried: tuple[str, ...] = ()

    @property
    def confirming(self) -> bool:
        return bool(self.cleaned_data.get("confirm"))

    def carried_values(self) -> list[tuple[str, str]]:
        return [(name, str(self.cleaned_data.get(name) or "")) for name in self.carried]


class BackupForm(Confirmable):
    tags = forms.CharField(required=False, max_length=2000, help_text="comma-separated: key=value or a word",
                           widget=forms.TextInput(attrs={"placeholder": "reason=maintenance, pre-upgrade"}))
    carried = ("tags",)

    def tag_list(self) -> list[str]:
        return [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]


class NamespaceBackupForm(BackupForm):
    pass


class RestoreForm(Confirmable):
    # A free string (the service checks it against the PVC's backups); shown as a list of them.
    snapshot = forms.CharField(label="Backup", max_length=253, initial="latest", widget=forms.Select)
    target_namespace = forms.CharField(max_length=63, validators=[_dns_label])
    target_pvc = forms.CharField(max_length=DNS_SUBDOMAIN_MAX, validators=[_dns_subdomain], label="New PVC name")
    carried = ("snapshot", "target_namespace", "target_pvc")

    def __init__(self, *args, backups=(), **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("latest", "latest completed backup")]
        choices += [(b.name, f"{b.name} · {b.created:%Y-%m-%d %H:%M UTC}" if b.created else b.name)
                    for b in backups if b.completed]
        self.fields["snapshot"].widget.choices = choices


class DrillForm(forms.Form):
    dry_run = forms.BooleanField(required=False, label="Dry run (plan only)")


class NamespaceRestoreForm(Confirmable):
    target_namespace = forms.CharField(max_length=63, validators=[_dns_label])
    target_prefix = forms.CharField(max_length=40, required=False, initial="restore-", label="Name prefix")
    carried = ("target_namespace", "target_prefix")


class DeleteConfirmForm(Confirmable):
    """A deletion has no inputs beyond what its URL names: only the confirmation."""


HEALTH_REASONS = ("fresh", "stale", "never backed up", "last backup failed", "backup in progress", "backup stuck",
                  "not bound", "unsupported driver", "volume missing in Longhorn")


class InventoryFilterForm(forms.Form):
    """The inventory's filters, as GET parameters: a filtered page is a URL that survives a reload."""

    namespace = forms.CharField(required=False, max_length=63, validators=[_dns_label])
    reason = forms.ChoiceField(required=False, label="Health",
                               choices=[("", "any health")] + [(r, r) for r in HEALTH_REASONS])
    q = forms.CharField(required=False, max_length=253, label="PVC name contains")
    overdue = forms.BooleanField(required=False, label="Overdue only")
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
