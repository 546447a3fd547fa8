"""Who is calling: storefront API keys or JWTs for operators and admins, and what they may do.

Storefronts authenticate with `Authorization: Bearer sk_...` or `X-API-Key: sk_...`; the key
names their tenant. People (operators, admins) and storefront back-ends that prefer tokens use
HS256 JWTs signed with the configured `JWT_SECRET`, with `sub`, `role` and `exp` required (a
storefront token must also carry `tenant`). RBAC is a role check per route, plus tenant
scoping: a storefront only ever sees its own tenant's checkouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jwt

from api.errors import forbidden, unauthorized
from api.keys import KEY_PREFIX
from api.ports import KeyStore

Role = Literal["storefront", "operator", "admin"]
ROLES: tuple[Role, ...] = ("storefront", "operator", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    actor: str  # key id or JWT subject: what the audit log and metrics name
    role: Role
    tenant_id: str | None  # None for operators and admins: they see every tenant
    via: Literal["api_key", "jwt"]

    def require(self, *roles: Role) -> Principal:
        if self.role not in roles:
            raise forbidden(f"role {self.role!r} may not do this; needs one of {', '.join(roles)}")
        return self

    def may_see(self, tenant_id: str | None) -> bool:
        return self.role != "storefront" or (tenant_id is not None and tenant_id == self.tenant_id)


class Authenticator:
    def __init__(self, keys: KeyStore, jwt_secret: str, *, leeway_s: int = 30) -> None:
        self._keys = keys
        self._secret = jwt_secret
        self._leeway = leeway_s

    def __repr__(self) -> str:  # never show the secret
        return "Authenticator(jwt_secret=<hidden>)"

    def authenticate(self, bearer: str | None, api_key: str | None) -> Principal:
        if bearer and api_key:
            raise unauthorized("send either Authorization or X-API-Key, not both")
        credential = bearer or api_key
        if not credential:
            raise unauthorized(
                "missing credentials: Authorization: Bearer <key|token> or X-API-Key"
            )
        if credential.startswith(KEY_PREFIX):
            return self._api_key(credential)
        if api_key:
            raise unauthorized("X-API-Key must hold a storefront API key (sk_...)")
        return self._jwt(credential)

    def _api_key(self, plaintext: str) -> Principal:
        key = self._keys.lookup(plaintext)
        if key is None:
            raise unauthorized("unknown or revoked API key")
        return Principal(
            actor=key.key_id, role="storefront", tenant_id=key.tenant_id, via="api_key"
        )

    def _jwt(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],  # pinned: never let the token choose (alg=none, RS/HS mixups)
                options={"require": ["exp", "sub", "role"]},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError as e:
            raise unauthorized("token expired") from e
        except jwt.MissingRequiredClaimError as e:
            raise unauthorized(f"token lacks the {e.claim!r} claim") from e
        except jwt.InvalidTokenError as e:
            raise unauthorized("invalid token") from e
        role = claims.get("role")
        if role not in ROLES:
            raise forbidden(f"unknown role {role!r}")
        tenant = claims.get("tenant")
        if role == "storefront" and not isinstance(tenant, str):
            raise forbidden("a storefront token must name its tenant")
        return Principal(
            actor=str(claims["sub"]),
            role=role,
            tenant_id=tenant if role == "storefront" else None,
            via="jwt",
        )


def make_token(secret: str, *, sub: str, role: Role, exp: int, tenant: str | None = None) -> str:
    """An HS256 token (for the CLI, tests and operators' tooling)."""
    claims: dict[str, object] = {"sub": sub, "role": role, "exp": exp}
    if tenant is not None:
        claims["tenant"] = tenant
    return jwt.encode(claims, secret, algorithm="HS256")
