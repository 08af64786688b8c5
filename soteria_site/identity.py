"""Who is acting: the name that goes into `requested_by`, Events and logs."""

ANONYMOUS = "anonymous"


def requested_by(request) -> str:
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return user.get_username()
    return ANONYMOUS
