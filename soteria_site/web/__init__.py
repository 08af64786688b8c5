"""The HTTP kernel every app's views use: the edge middleware, identity, authentication,
access and permissions, throttles, the audit trail and the API error handler. It imports
the kernel (soteria_site.core) and no app (see .importlinter)."""
