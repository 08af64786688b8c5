"""Who is acting: the name that goes into `requested_by`, Events and logs."""

from .authn import identity_of


def requested_by(request) -> str:
    return identity_of(request).user
