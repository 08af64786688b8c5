"""System checks for rules that span several settings."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def restic_settings(app_configs, **kwargs):
    if settings.SOTERIA_BACKUP_DRIVER not in ("restic", "auto"):
        return []
    errors = []
    if not settings.SOTERIA_RESTIC_REPOSITORY:
        errors.append(Error(
            f"SOTERIA_RESTIC_REPOSITORY is required when SOTERIA_BACKUP_DRIVER={settings.SOTERIA_BACKUP_DRIVER}",
            hint="Set it to the restic repository, e.g. s3:https://s3.example.com/bucket/soteria",
            id="soteria.E001",
        ))
    return errors


@register()
def bearer_token_strength(app_configs, **kwargs):
    """Short tokens start only with SOTERIA_ALLOW_SHORT_TOKENS=true; say so every time."""
    weak = sorted({name for name, token in settings.SOTERIA_AUTH_BEARER_TOKENS
                   if len(token) < settings.MIN_TOKEN_LENGTH})
    if not weak:
        return []
    return [Warning(
        f"bearer token(s) {', '.join(weak)} in SOTERIA_AUTH_BEARER_TOKENS are shorter than "
        f"{settings.MIN_TOKEN_LENGTH} characters (allowed by SOTERIA_ALLOW_SHORT_TOKENS)",
        hint="Use long random tokens, e.g. `openssl rand -hex 32`.",
        id="soteria.W001",
    )]
