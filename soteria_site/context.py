"""Template context for every console page."""

from .access import grants_of
from .identity import identity_of


def soteria(request):
    return {"who": identity_of(request), "grants": grants_of(request)}
