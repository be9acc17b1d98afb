"""Security primitives: API tokens, roles and scopes, OIDC bearer tokens, secret encryption.

Pure logic and cryptography only; what reads the database lives in ``fairpool.services``.
"""
