"""How the OpenAPI schema describes Soteria's authentication."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "soteria_site.web.authn.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "One of SOTERIA_AUTH_BEARER_TOKENS (automation)."}


class ProxyHeaderScheme(OpenApiAuthenticationExtension):
    target_class = "soteria_site.web.authn.ProxyHeaderAuthentication"
    name = "proxyHeaders"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-Auth-Request-User",
                "description": "Identity set by the authenticating proxy (with X-Auth-Request-Email and "
                               "X-Auth-Request-Groups, or the X-Forwarded-* fallbacks). Unsafe requests need a "
                               "CSRF token or a JSON body from Soteria's own origin."}
