"""audit_verify: an intact log passes; each kind of tampering, done directly in SQL, is caught."""

import io
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.utils import timezone

from audit.chain import LINK_ROW_PATHS, ROW_FIELDS, event_hash
from audit.checkpoints import checkpoint_write
from audit.keys import hmac_keys
from audit.models import ChainLink, Checkpoint
from audit.verify import chain_verify
from tests.audit.conftest import AT, delete_events, record_events, tamper

pytestmark = pytest.mark.django_db


def problems() -> list[tuple[str, int | None]]:
    return [(problem.kind, problem.sequence) for problem in chain_verify().problems]


def verify_command() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_an_intact_log_verifies_and_the_command_exits_0(sealed_events):
    sealed_events(5)
    checkpoint_write()

    status, out, _ = verify_command()
    assert status == 0
    assert "Checked 5 events (sequence 1-5) and 1 checkpoints" in out and "OK: the event log is intact." in out


def test_a_changed_row_is_reported_at_its_sequence_and_the_command_exits_1(sealed_events):
    sealed_events(5)
    tamper(f"UPDATE audit_securityevent SET details = %s WHERE {AT.format('sequence = 3')}", ['{"n": 99}'])

    assert problems() == [("content_changed", 3)]
    status, _, err = verify_command()
    assert status == 1
    assert "[content_changed] event 3" in err and "changed after sealing" in err


def test_a_deleted_row_is_a_gap_in_the_sequence(sealed_events):
    sealed_events(5)
    delete_events("sequence = 3")

    assert problems() == [("sequence_gap", 3)]
    status, _, err = verify_command()
    assert status == 1 and "[sequence_gap] sequence 3 missing" in err


@pytest.mark.parametrize("table", ["audit_securityevent", "audit_chainlink"])
def test_an_event_deleted_without_its_link_or_a_link_without_its_event_is_a_gap(sealed_events, table):
    sealed_events(5)
    where = AT.format("sequence = 3") if table == "audit_securityevent" else "sequence = 3"
    tamper(f"DELETE FROM {table} WHERE {where}")

    assert problems() == [("sequence_gap", 3)]


def test_an_event_taken_off_the_sealers_queue_is_reported_once_it_is_stale(db):
    with time_machine.travel(timezone.now() - timedelta(minutes=5)):
        record_events(1)
    tamper("DELETE FROM audit_unsealedevent")
    record_events(1)
    from audit.chain import security_event_seal

    security_event_seal()
    assert problems() == [("stale_unsealed", None)]


def test_a_tail_cut_off_since_the_last_checkpoint_is_reported(sealed_events):
    sealed_events(5)
    checkpoint_write()
    sealed_events(2)
    delete_events("sequence > 3")

    assert problems() == [("truncated_tail", 4)]
    status, _, err = verify_command()
    assert status == 1
    assert "the chain ends at sequence 3" in err and "recorded sequence 5" in err


def test_oldest_events_deleted_without_a_retention_checkpoint_are_reported(sealed_events):
    sealed_events(5)
    delete_events("sequence <= 2")

    assert problems() == [("missing_prefix", 3)]


def test_a_chain_rewritten_with_the_stolen_hmac_key_is_caught_by_a_signed_checkpoint(sealed_events):
    sealed_events(5)
    checkpoint_write()
    tamper(f"UPDATE audit_securityevent SET actor_label = 'nobody' WHERE {AT.format('sequence = 2')}")
    # The attacker knows the HMAC key and re-hashes every event from there on...
    key = next(iter(hmac_keys().values()))
    previous = ChainLink.objects.get(sequence=1).hash
    for sequence in range(2, 6):
        row = list(ChainLink.objects.filter(sequence=sequence).values_list(*LINK_ROW_PATHS).get())
        row[ROW_FIELDS.index("previous_hash")] = previous
        previous = event_hash(row[:-1], key)
        tamper(
            "UPDATE audit_chainlink SET previous_hash = %s, hash = %s WHERE sequence = %s",
            [row[ROW_FIELDS.index("previous_hash")], previous, sequence],
        )
    # ...but cannot sign a checkpoint without the Ed25519 key.
    assert problems() == [("checkpoint_mismatch", 5)]


def test_a_forged_checkpoint_is_reported(sealed_events):
    sealed_events(3)
    Checkpoint.objects.create(
        kind=Checkpoint.Kind.SCHEDULED,
        sequence=9,
        hash="f" * 64,
        created_at=timezone.now(),
        key_id="0" * 16,
        signature="00" * 64,
    )

    assert [kind for kind, _ in problems()] == ["checkpoint_forged"]


def test_deleted_checkpoints_are_noticed_through_their_copy_outside_the_database(
    sealed_events, checkpoint_file, django_capture_on_commit_callbacks
):
    sealed_events(5)
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint_write()
    assert checkpoint_file.read_text().count("\n") == 1
    tamper("DELETE FROM audit_checkpoint")
    delete_events("sequence > 2")

    report = chain_verify(checkpoint_file=str(checkpoint_file))
    assert [problem.kind for problem in report.problems] == ["checkpoint_deleted", "truncated_tail"]
    assert chain_verify().ok  # without the copy, both deletions together would go unnoticed


def test_events_the_sealer_never_reached_are_reported(db):
    with time_machine.travel(timezone.now() - timedelta(minutes=5)):
        record_events(2)

    assert problems() == [("stale_unsealed", None)]


def test_events_recorded_moments_ago_are_not_a_problem(db):
    record_events(2)
    report = chain_verify()
    assert report.ok and report.unsealed == 2


def test_the_command_explains_itself():
    parser = load_command_class("audit", "audit_verify").create_parser("manage.py", "audit_verify")
    help_text = " ".join(parser.format_help().split())
    assert "exits with status 1" in help_text and "--checkpoint-file" in help_text


@pytest.fixture
def small_spans(monkeypatch):
    from audit import walk

    monkeypatch.setattr(walk, "MIN_SPAN", 1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("tampering", "expected"),
    [
        (None, []),
        (
            f"UPDATE audit_securityevent SET actor_label = 'x' WHERE {AT.format('sequence = 9')}",
            [("content_changed", 9)],
        ),  # noqa: E501
        ("sequence IN (6, 7, 8)", [("sequence_gap", 6)]),
        ("sequence BETWEEN 4 AND 9", [("sequence_gap", 4)]),
        ("sequence = 1", [("missing_prefix", 2)]),
    ],
)
def test_several_processes_find_what_one_finds(small_spans, tampering, expected):
    record_events(12)  # committed and sealed as they are recorded (no test transaction here)
    if tampering and tampering.startswith("UPDATE"):
        tamper(tampering)
    elif tampering:
        delete_events(tampering)

    one, four = chain_verify(jobs=1), chain_verify(jobs=4)
    assert [(p.kind, p.sequence) for p in four.problems] == [(p.kind, p.sequence) for p in one.problems] == expected
    assert (four.events, four.first_sequence, four.last_sequence, four.head_hash) == (
        one.events,
        one.first_sequence,
        one.last_sequence,
        one.head_hash,
    )
