"""Stable security event codes, grouped by area. Codes are stored; never rename one."""

from django.db import models


class EventType(models.TextChoices):
    AUTH_LOGIN_SUCCEEDED = "auth.login_succeeded", "Sign-in succeeded"
    AUTH_LOGIN_FAILED = "auth.login_failed", "Sign-in failed"
    AUTH_LOGOUT = "auth.logout", "Signed out"
    AUTH_MFA_SUCCEEDED = "auth.mfa_succeeded", "MFA step succeeded"
    AUTH_MFA_FAILED = "auth.mfa_failed", "MFA step failed"
    AUTH_MFA_ENROLLED = "auth.mfa_enrolled", "MFA authenticator added"
    AUTH_MFA_REMOVED = "auth.mfa_removed", "MFA authenticator removed"
    AUTH_MFA_RESET = "auth.mfa_reset", "MFA authenticator reset"
    AUTH_PASSWORD_CHANGED = "auth.password_changed", "Password changed"
    AUTH_PASSWORD_RESET = "auth.password_reset", "Password reset by e-mail"
    AUTH_STAFF_CREATED = "auth.staff_created", "Staff account created"
    AUTH_SESSION_EXPIRED = "auth.session_expired", "Session reached its absolute limit"
    AUTH_STAFF_CHANGED = "auth.staff_changed", "Staff account's flags, groups or permissions changed"

    DIRECTORY_ORGANIZATION_CREATED = "directory.organization_created", "Organisation created"
    DIRECTORY_STAFF_ASSIGNED = "directory.staff_assigned", "Staff member assigned to organisation"
    DIRECTORY_STAFF_UNASSIGNED = "directory.staff_unassigned", "Staff member removed from organisation"
    DIRECTORY_IMPORT_STARTED = "directory.import_started", "Directory import started"
    DIRECTORY_IMPORT_COMPLETED = "directory.import_completed", "Directory import completed"
    DIRECTORY_IMPORT_REJECTED = "directory.import_rejected", "Directory import rejected"
    DIRECTORY_PERSON_CONTACT_CHANGED = "directory.person_contact_changed", "Person's contact of record changed"
    DIRECTORY_ORGANIZATION_UPDATED = "directory.organization_updated", "Organisation changed"
    DIRECTORY_PERSON_CREATED = "directory.person_created", "Person added to the directory"
    DIRECTORY_PERSON_UPDATED = "directory.person_updated", "Person's directory entry changed"
    DIRECTORY_PERSON_DELETED = "directory.person_deleted", "Person removed from the directory"


class ActorKind(models.TextChoices):
    STAFF = "staff", "Staff user"
    SYSTEM = "system", "System"
    END_USER = "end_user", "End user via channel"
