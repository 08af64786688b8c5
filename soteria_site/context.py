"""Template context for every console page."""

from .authn import grants_of, identity_of


def soteria(request):
    return {"who": identity_of(request), "grants": grants_of(request)}
