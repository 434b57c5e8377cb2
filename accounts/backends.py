"""Django's and allauth's sign-in backends, with the signed-in user loaded by a written-out
read (``accounts.selectors.user_get_with_scope``): every request of a signed-in user loads
them, and the ORM's ``get(pk=...)`` cost more CPU than the statement; the same statement
reads the organisations they work on, which the request would ask next. Everything else is
the parent's."""

from __future__ import annotations

from allauth.account.auth_backends import AuthenticationBackend as AllauthBackend
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend

from accounts.selectors import user_get_with_scope


class _WrittenOutUser:
    def get_user(self, user_id):
        """As ``ModelBackend.get_user``: None for no such user, or one who may not sign in
        (inactive)."""
        if not isinstance(user_id, int):
            return None
        user = user_get_with_scope(pk=user_id)
        return user if user is not None and self.user_can_authenticate(user) else None


class ModelBackend(_WrittenOutUser, DjangoModelBackend):
    pass


class AuthenticationBackend(_WrittenOutUser, AllauthBackend):
    pass
