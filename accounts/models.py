from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, Group, PermissionsMixin
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.rows import column_values


class Role(models.TextChoices):
    """Staff roles; each is a Group created by a data migration."""

    TECHNICIAN = "Technician"
    APPROVER = "Approver"
    AUDITOR = "Auditor"
    ORG_ADMIN = "Org admin"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        if not email:
            raise ValueError("Staff users need an email address")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A staff member: technician, approver, auditor, org admin or superuser.

    End users of client organisations are never Users; they are Person rows.
    """

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="May open the Django admin (still after MFA).")
    date_joined = models.DateTimeField(default=timezone.now)
    # Inactivity lock (accounts.services.user_lock_inactive): set with is_active=False when the
    # account went STAFF_INACTIVE_LOCK_DAYS without a sign-in; cleared by user_unlock, which
    # stamps unlocked_at so the inactivity clock restarts there.
    locked_at = models.DateTimeField(null=True, blank=True, help_text="Locked for inactivity at.")
    unlocked_at = models.DateTimeField(null=True, blank=True, help_text="Last unlocked (with a reason) at.")

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.full_name or self.email

    def has_role(self, role: Role) -> bool:
        """Whether the user is in the role's group: as read with the user at the start of the
        request (``remember_roles``), else asked now, written out (the ORM's query took more
        CPU than the statement)."""
        known = self.__dict__.get("_roles_read")
        if known is not None:
            return role in known
        if self.pk is None:
            return False
        return bool(column_values(role_sql(user="%s"), [self.pk, str(role)]))

    def remember_roles(self, roles: Iterable[str]) -> None:
        """The roles read with the user for this request (``accounts.selectors.user_get_with_scope``,
        which every signed-in request reads the user with): ``has_role`` answers from them, so
        a role removed is in force from the next request, like an organisation unassigned."""
        self.__dict__["_roles_read"] = frozenset(roles)

    @property
    def is_locked(self) -> bool:
        """Locked for inactivity: cannot sign in until an org admin (or superuser) unlocks it."""
        return self.locked_at is not None


def role_sql(*, user: str) -> str:
    """``SELECT 1`` when the user (a placeholder, or a column of a read of users) is in the
    role's group (a placeholder after it): ``has_role``'s statement, and its part in the
    signed-in user's read (``accounts.selectors.user_get_with_scope``)."""
    groups = User.groups.through._meta.db_table
    return (
        f"SELECT 1 FROM {groups} ug JOIN {Group._meta.db_table} g ON g.id = ug.group_id"  # noqa: S608 - names from models
        f" WHERE ug.user_id = {user} AND g.name = %s"
    )


class Organization(models.Model):
    """A client organisation of the helpdesk. Everything else is scoped by it."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        permissions = [("work_on_organization", "Can work on this organisation's people")]

    def __str__(self) -> str:
        return self.name


employee_id_validator = RegexValidator(r"^[A-Za-z0-9._-]{1,64}$", "Letters, digits, dot, dash and underscore only.")


class Person(models.Model):
    """An end user in a client organisation's directory. Not an account: no password, no login."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="people")
    employee_id = models.CharField(max_length=64, validators=[employee_id_validator])
    full_name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="Phone of record, E.164.")
    department = models.CharField(max_length=120, blank=True)
    manager = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    privileged = models.BooleanField(default=False, help_text="Holds admin rights; verification asks for more.")
    contact_changed_at = models.DateTimeField(null=True, blank=True)
    # Lower-cased "name email employee-id phone" for one indexed substring search.
    search_text = models.CharField(max_length=500, editable=False, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["full_name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "employee_id"], name="person_unique_employee_id"),
            models.UniqueConstraint(
                "organization", Lower("email"), condition=~models.Q(email=""), name="person_unique_email"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "full_name"]),
            models.Index(fields=["organization", "phone"]),
        ]

    def __str__(self) -> str:
        return self.full_name

    def save(self, *args, **kwargs):
        self.search_text = self.build_search_text()
        super().save(*args, **kwargs)

    def build_search_text(self) -> str:
        return " ".join(p for p in (self.full_name, self.email, self.employee_id, self.phone) if p).lower()[:500]

    @property
    def masked_phone(self) -> str:
        return f"•••• {self.phone[-4:]}" if self.phone else ""


class ImportJob(models.Model):
    """A directory import started from the upload page and run by a Celery worker.

    The CSV text is kept in the row so the web process and the worker share no disk,
    and so a successful dry run can be imported for real without another upload. It
    holds people's phones and emails, so ``accounts.imports.jobs`` clears it once the
    job finishes (a clean dry run: once it is confirmed) and the admin never shows it.
    ``result`` holds the counts and at most MAX_STORED_ERRORS row errors (with the total).
    """

    MAX_STORED_ERRORS = 1000

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="import_jobs"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    dry_run = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    csv_text = models.TextField()
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        kind = "dry run" if self.dry_run else "import"
        return f"{self.organization} {kind} {self.created_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def in_progress(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)
