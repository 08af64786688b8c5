"""Template context for every console and admin page."""

from .web.access import grants_of, may_administer
from .web.identity import identity_of


def soteria(request):
    identity = identity_of(request)
    return {"who": identity, "grants": grants_of(request), "may_administer": may_administer(identity)}
