import hashlib
import hmac
import json

import pytest
from django.test import RequestFactory

from audit import chain
from audit.chain import GENESIS_HASH, HASHED_FIELDS, event_link_verifies, security_event_seal
from audit.events import EventType
from audit.keys import hmac_key_id
from audit.models import ChainLink, SecurityEvent, UnsealedEvent
from audit.recorder import security_event_record
from audit.signals import security_events_sealed
from audit.verify import chain_verify
from tests.audit.conftest import AT, record_events, tamper

pytestmark = pytest.mark.django_db
chain_seal = security_event_seal


def chain_links():
    return list(ChainLink.objects.order_by("sequence").values_list("sequence", "previous_hash", "hash"))


def test_sealed_events_form_one_chain_from_the_genesis(sealed_events):
    sealed_events(3)

    links = chain_links()
    assert [sequence for sequence, _, _ in links] == [1, 2, 3]
    assert links[0][1] == GENESIS_HASH
    assert links[1][1] == links[0][2] and links[2][1] == links[1][2]
    assert len({digest for _, _, digest in links}) == 3


def test_hash_is_the_hmac_of_the_documented_canonical_json(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Agent/1.0")
    security_event_record(
        event_type=EventType.AUTH_LOGIN_FAILED, details={"z": [1, "é"], "a": {"y": True, "b": None}}, request=request
    )
    security_event_seal()
    event = SecurityEvent.objects.get()
    link = event.link

    # docs/audit.md, "Canonical content": written out independently of audit.chain.
    content = {
        "id": event.id,
        "sequence": 1,
        "previous_hash": GENESIS_HASH,
        "key_id": hmac_key_id(settings.AUDIT_HMAC_KEY),
        "sealed_at": link.sealed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "event_type": "auth.login_failed",
        "actor_kind": "system",
        "actor_id": None,
        "actor_label": "System",
        "organization_id": None,
        "organization_label": "",
        "target_type": "",
        "target_id": "",
        "target_label": "",
        "request_id": event.request_id,
        "source_ip": "203.0.113.9",
        "user_agent": "Agent/1.0",
        "details": {"a": {"b": None, "y": True}, "z": [1, "é"]},
        "created_at": event.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert b'"details":{"a":{"b":null,"y":true},"z":[1,"\xc3\xa9"]}' in canonical
    assert link.hash == hmac.new(settings.AUDIT_HMAC_KEY, canonical, hashlib.sha256).hexdigest()


def test_every_column_except_the_hash_itself_is_hashed():
    columns = {field.column for field in SecurityEvent._meta.concrete_fields}
    columns |= {field.column for field in ChainLink._meta.concrete_fields} - {"event_id"}  # the event's id
    # A new column must be added to HASHED_FIELDS (a new canonical version) or declared derived here.
    assert columns == {*HASHED_FIELDS, "hash"}


def test_the_database_queues_every_new_event_and_sealing_empties_the_queue(db):
    record_events(3)
    assert sorted(UnsealedEvent.objects.values_list("event_id", flat=True)) == sorted(
        SecurityEvent.objects.values_list("id", flat=True)
    )
    security_event_seal()
    assert not UnsealedEvent.objects.exists()
    assert ChainLink.objects.count() == 3


def test_a_second_link_for_an_event_or_a_place_is_refused(sealed_events):
    from django.db import IntegrityError, transaction

    sealed_events(2)
    first = ChainLink.objects.get(sequence=1)
    for sequence, event_id in ((3, first.event_id), (1, first.event_id + 1000)):
        with pytest.raises(IntegrityError), transaction.atomic():
            ChainLink.objects.create(
                sequence=sequence, event_id=event_id, previous_hash="0" * 64, hash="1" * 64, sealed_at=first.sealed_at
            )


def test_events_wait_inside_their_transaction_and_are_sealed_once_it_commits(
    django_capture_on_commit_callbacks, monkeypatch
):
    runs = []
    monkeypatch.setattr(chain, "security_event_seal", lambda **kwargs: runs.append(chain_seal(**kwargs)))
    with django_capture_on_commit_callbacks(execute=True):
        record_events(3)
        assert SecurityEvent.objects.filter(link__isnull=True).count() == 3

    assert runs == [3]  # one sealing per transaction, however many events
    assert SecurityEvent.objects.filter(link__isnull=True).count() == 0
    assert chain_verify().ok


def test_sealing_announces_the_sealed_events_in_chain_order(django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, events, **kwargs):
        received.extend(events)

    security_events_sealed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            record_events(2)
    finally:
        security_events_sealed.disconnect(receiver)

    assert [event["sequence"] for event in received] == [1, 2]
    assert received[1]["previous_hash"] == received[0]["hash"]
    assert received[0]["details"] == {"n": 0}


def test_an_events_link_verifies_until_it_is_changed(sealed_events):
    sealed_events(3)
    second = SecurityEvent.objects.get(link__sequence=2)
    assert event_link_verifies(second) is True

    tamper(f"UPDATE audit_securityevent SET actor_label = 'someone else' WHERE {AT.format('sequence = 2')}")
    assert event_link_verifies(second) is False


def test_an_unsealed_event_has_no_verdict_yet(db):
    record_events(1)
    assert event_link_verifies(SecurityEvent.objects.get()) is None


def test_events_sealed_before_a_key_rotation_verify_with_the_retired_key(settings, sealed_events):
    sealed_events(2)
    old_key = settings.AUDIT_HMAC_KEY
    settings.AUDIT_HMAC_KEY = b"rotated-audit-hmac-key-" + b"r" * 20
    settings.AUDIT_HMAC_RETIRED_KEYS = [old_key]
    sealed_events(2)

    assert len(set(ChainLink.objects.values_list("key_id", flat=True))) == 2
    assert chain_verify().ok

    settings.AUDIT_HMAC_RETIRED_KEYS = []
    report = chain_verify()
    assert [problem.kind for problem in report.problems] == ["unknown_key", "unknown_key"]


def test_secret_keys_are_refused_at_any_depth(db):
    with pytest.raises(ValueError, match="token"):
        security_event_record(event_type=EventType.AUTH_LOGOUT, details={"outer": [{"Token": "abc"}]})
    assert not SecurityEvent.objects.exists()


@pytest.mark.parametrize("address", ["203.0.113.9", "2001:db8::1", "::ffff:192.0.2.1", None])
def test_what_the_sealer_hashed_is_what_verification_reads_back(address):
    """audit_verify reads times, addresses and details its own way on PostgreSQL."""
    request = RequestFactory().get("/", HTTP_USER_AGENT="Agent/ü", **({"REMOTE_ADDR": address} if address else {}))
    if address is None:
        request.META.pop("REMOTE_ADDR", None)
    details = {"ü": "ß", "f": 0.1, "one": 1.0, "big": 10**20, "nested": {"b": [None, True, {"z": 1, "a": 2}]}, "e": {}}
    security_event_record(event_type=EventType.AUTH_LOGIN_FAILED, details=details, request=request)
    security_event_seal()

    report = chain_verify()
    assert report.ok, report.problems
    assert report.events == 1
