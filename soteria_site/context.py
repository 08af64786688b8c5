"""Template context for every console page."""

from .web.access import grants_of
from .web.identity import identity_of


def soteria(request):
    return {"who": identity_of(request), "grants": grants_of(request)}
