from django.db import models

from audit.events import ActorKind, EventType


class AppendOnlyError(ValueError):
    """Something tried to change or delete a row of the audit log."""


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk changes are refused like single ones. The sealer and ``audit_retention`` use their
    own SQL, which on PostgreSQL the table's trigger still checks (audit/migrations/0005)."""

    def _refuse(self, *args, **kwargs):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} are append-only")

    update = bulk_update = _refuse
    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self):
        self._refuse()

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]


class SecurityEvent(models.Model):
    """One security-relevant step. Rows are written once and never changed.

    Actor, organisation and target are kept as ids plus readable labels rather than
    foreign keys, so the log imports no other app and outlives what it describes.

    Its place in the hash chain is a ``ChainLink`` the sealer writes right after the
    event's transaction commits (``audit.chain``); the row itself is never updated, not
    even by the sealer. Until then the database keeps the event's id in ``UnsealedEvent``
    (an insert trigger on PostgreSQL and SQLite, audit/migrations/0008).
    """

    # No `choices=`: a new event code must not need a migration. Labels come from EventType.
    event_type = models.CharField(max_length=64)  # indexed for equality and prefixes: Meta
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=255, blank=True)
    organization_id = models.BigIntegerField(null=True, blank=True)  # leads the index below
    organization_label = models.CharField(max_length=255, blank=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization_id", "-created_at"]),
            # One index for a type (=) and a group of types (LIKE 'access.%'): pattern ops serve
            # both on PostgreSQL (audit/migrations/0009).
            models.Index(fields=["event_type"], name="audit_event_type_pattern", opclasses=["varchar_pattern_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event_type} {self.actor_label}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("Security events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Security events are append-only")

    @property
    def event_type_label(self) -> str:
        try:
            return str(EventType(self.event_type).label)
        except ValueError:
            return self.event_type


class ChainLink(models.Model):
    """An event's link in the hash chain, written once by the sealer (``audit.chain``): its
    place, the hash of the event one place earlier, and an HMAC-SHA256 over the event's
    canonical content, which covers these fields too (all but ``hash``).

    A narrow row of its own rather than columns of the event: sealing inserts it instead of
    rewriting the wide event row and its ten indexes (docs/benchmarks.md). ``sequence`` is
    the key and ``event`` unique, so the chain cannot fork and no event is sealed twice. No
    foreign-key constraint: a deleted event or link shows as a gap in ``audit_verify``.
    """

    sequence = models.BigIntegerField(primary_key=True, help_text="Place in the chain, from 1.")
    event = models.OneToOneField(SecurityEvent, on_delete=models.DO_NOTHING, db_constraint=False, related_name="link")
    previous_hash = models.CharField(max_length=64, help_text="Hash of the event one place earlier.")
    hash = models.CharField(max_length=64, help_text="HMAC-SHA256 of the event's canonical content.")
    key_id = models.CharField(max_length=16, help_text="Fingerprint of the HMAC key (never the key).")
    sealed_at = models.DateTimeField(help_text="When the sealer chained it.")

    objects = AppendOnlyQuerySet.as_manager()

    def __str__(self) -> str:
        return f"link {self.sequence} of event {self.event_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Chain links are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Chain links are append-only")


class UnsealedEvent(models.Model):
    """The sealer's queue: the ids of events that have no ``ChainLink`` yet. Filled by the
    database (an insert trigger on the event table, audit/migrations/0008), emptied by the
    sealer as it links them."""

    event = models.OneToOneField(
        SecurityEvent, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )

    def __str__(self) -> str:
        return f"event {self.event_id} waiting for the sealer"


class Checkpoint(models.Model):
    """A signed statement of the chain head: "at ``created_at`` the chain ended at
    ``sequence`` with ``hash``". Written by a beat task and by ``audit_retention``, and copied
    outside the database when configured. Signed with Ed25519 (``audit.checkpoints``)."""

    class Kind(models.TextChoices):
        SCHEDULED = "scheduled", "Chain head"
        RETENTION = "retention", "Retention: events up to here were dropped"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    sequence = models.BigIntegerField(help_text="0 for an empty chain.")
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=16, help_text="Fingerprint of the signing key's public half.")
    signature = models.CharField(max_length=128, help_text="Ed25519 signature, hex.")

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "-sequence"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at sequence {self.sequence} ({self.created_at:%Y-%m-%d %H:%M:%S})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("Checkpoints are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Checkpoints are append-only")
