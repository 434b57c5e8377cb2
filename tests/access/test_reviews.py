"""Access review campaigns: who may start and decide, self-review refused, the deadline at
the boundary, the campaign page with its progress, and the quarterly schedule."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from access.models import AccessRequest, Eligibility, ReviewCampaign, ReviewItem
from access.services import AccessError, reviews
from access.services.eligibility import eligibility_end
from audit.models import SecurityEvent
from tests.access.factories import (
    AccessRequestFactory,
    EligibilityFactory,
    GrantFactory,
    approver_for,
    org_admin_for,
    technician_for,
)

pytestmark = pytest.mark.django_db

PROPERTY = hypothesis_settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
RECERTIFIED, REMOVED = ReviewItem.Decision.RECERTIFIED, ReviewItem.Decision.REMOVED


def text(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


@pytest.fixture
def staffed(org, role):
    """Three technicians of org eligible for role, one of them also an org admin."""
    technicians = [technician_for(org) for _ in range(2)]
    admin_technician = technician_for(org, mfa=True)
    admin_technician.groups.add(*org_admin_for(org).groups.all())
    eligibilities = [
        EligibilityFactory(technician=t, role=role, organization=org) for t in [*technicians, admin_technician]
    ]
    return technicians, admin_technician, eligibilities


def _item(campaign, eligibility) -> ReviewItem:
    return campaign.items.get(eligibility=eligibility)


def test_org_admin_starts_a_campaign_over_current_eligibilities(org, other_org, org_admin, staffed, role):
    ended = EligibilityFactory(technician=technician_for(org), organization=org, ended_at=timezone.now())
    expired = EligibilityFactory(
        technician=technician_for(org), organization=org, valid_until=timezone.now() - timedelta(seconds=1)
    )
    elsewhere = EligibilityFactory(technician=technician_for(other_org), role=role, organization=other_org)
    campaign = reviews.review_campaign_start(actor=org_admin, organization=org)
    in_scope = set(campaign.items.values_list("eligibility_id", flat=True))
    assert in_scope == {e.pk for e in staffed[2]}
    assert not in_scope & {ended.pk, expired.pk, elsewhere.pk}
    assert campaign.deadline == campaign.started_at + timedelta(days=14)
    assert campaign.items.filter(decision="pending").count() == 3
    event = SecurityEvent.objects.get(event_type="access.review_started")
    assert event.actor_id == org_admin.pk and event.details["items"] == 3 and event.organization_id == org.pk


def test_one_open_campaign_per_organisation(org, org_admin, staffed):
    reviews.review_campaign_start(actor=org_admin, organization=org)
    with pytest.raises(AccessError, match="already open"):
        reviews.review_campaign_start(actor=org_admin, organization=org)
    assert ReviewCampaign.objects.count() == 1


def test_only_org_admins_of_the_organisation_start_one(org, other_org, staffed):
    for outsider in (org_admin_for(other_org), approver_for(org), staffed[0][0]):
        with pytest.raises(AccessError):
            reviews.review_campaign_start(actor=outsider, organization=org)
    assert not ReviewCampaign.objects.exists()


def test_starting_a_campaign_in_another_organisation_is_a_404(client, org, other_org, staffed):
    client.force_login(org_admin_for(other_org, mfa=True))
    assert client.post(reverse("access:review_start", args=[org.slug])).status_code == 404
    assert client.get(reverse("access:review_list", args=[org.slug])).status_code == 404
    assert not ReviewCampaign.objects.exists()


def test_the_deadline_must_be_in_the_future_and_within_90_days(org, org_admin, staffed):
    now = timezone.now()
    for deadline in (now - timedelta(seconds=1), now + timedelta(days=91)):
        with pytest.raises(AccessError, match="deadline"):
            reviews.review_campaign_start(actor=org_admin, organization=org, deadline=deadline)
    assert not ReviewCampaign.objects.exists()


def test_nothing_to_review_is_refused(org, org_admin):
    with pytest.raises(AccessError, match="nothing to review"):
        reviews.review_campaign_start(actor=org_admin, organization=org)


# --- Decisions ------------------------------------------------------------------------------


def test_nobody_reviews_their_own_eligibility(org, org_admin, staffed):
    _, admin_technician, eligibilities = staffed
    campaign = reviews.review_campaign_start(actor=org_admin, organization=org)
    own = _item(campaign, eligibilities[2])
    for decision in (RECERTIFIED, REMOVED):
        with pytest.raises(reviews.SelfReviewError):
            reviews.review_item_decide(actor=admin_technician, item=own, decision=decision, reason="All good here")
    own.refresh_from_db()
    assert own.is_pending
    refused = SecurityEvent.objects.filter(event_type="access.review_self_refused", actor_id=admin_technician.pk)
    assert refused.count() == 2
    # Another org admin may.
    reviews.review_item_decide(actor=org_admin, item=own, decision=RECERTIFIED)
    own.refresh_from_db()
    assert own.decision == RECERTIFIED and own.reviewer == org_admin


def test_the_database_refuses_a_self_review(org, org_admin, staffed):
    campaign = reviews.review_campaign_start(actor=org_admin, organization=org)
    item = campaign.items.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        ReviewItem.objects.filter(pk=item.pk).update(reviewer=item.technician, decision=RECERTIFIED)


def test_approvers_and_other_organisations_admins_cannot_decide(org, other_org, org_admin, staffed):
    campaign = reviews.review_campaign_start(actor=org_admin, organization=org)
    item = campaign.items.first()
    for outsider in (approver_for(org), org_admin_for(other_org)):
        with pytest.raises(AccessError, match="Only org admins"):
            reviews.review_item_decide(actor=outsider, item=item, decision=RECERTIFIED)
    item.refresh_from_db()
    assert item.is_pending


def test_removal_needs_a_reason_and_ends_the_eligibility_and_its_access(org, role, org_admin, staffed):
    technician = staffed[0][0]
    eligibility = staffed[2][0]
    grant = GrantFactory(technician=technician, role=role, organization=org)
    campaign = reviews.review_campaign_start(actor=org_admin, organization=org)
    item = _item(campaign, eligibility)
    with pytest.raises(AccessError, match="reason"):
        reviews.review_item_decide(actor=org_admin, item=item, decision=REMOVED, reason="  ")
    eligibility.refresh_from_db()
    assert eligibility.ended_at is None
    reviews.review_item_decide(actor=org_admin, item=item, decision=REMOVED, reason="Moved to the network team")
    eligibility.refresh_from_db()
    grant.refresh_from_db()
    item.refresh_from_db()
    assert eligibility.ended_at is not None and eligibility.ended_by == org_admin
    assert grant.revoked_at is not None and "Moved to the network team" in grant.reason
    assert item.decision == REMOVED and item.reason == "Moved to the network team"
    decided = SecurityEvent.objects.get(event_type="access.review_item_decided")
    assert decided.details["decision"] == "removed" and decided.details["campaign"] == campaign.pk
    ended = SecurityEvent.objects.get(event_type="access.eligibility_ended")
    assert ended.details["review"] == campaign.pk and ended.details["grants_revoked"] == [grant.pk]


def test_an_item_is_decided_once(org, org_admin, staffed):
    campaign = reviews.review_campaign_start(actor=org_admin, organization=org)
    item = campaign.items.first()
    reviews.review_item_decide(actor=org_admin, item=item, decision=RECERTIFIED)
    with pytest.raises(AccessError, match="already decided"):
        reviews.review_item_decide(actor=org_admin, item=item, decision=REMOVED, reason="Changed my mind")
    assert Eligibility.objects.get(pk=item.eligibility_id).ended_at is None


def test_an_eligibility_ended_meanwhile_counts_as_decided(org, org_admin, staffed):
    campaign = reviews.review_campaign_start(actor=org_admin, organization=org)
    eligibility = staffed[2][1]
    eligibility_end(actor=org_admin, eligibility=eligibility, reason="Left the company")
    item = _item(campaign, eligibility)
    assert item.decision == ReviewItem.Decision.ENDED
    with pytest.raises(AccessError, match="already decided"):
        reviews.review_item_decide(actor=org_admin, item=item, decision=RECERTIFIED)


# --- The deadline -----------------------------------------------------------------------------


def test_at_the_deadline_what_was_not_recertified_ends_not_a_second_before(org, role, org_admin, staffed):
    technicians, _, eligibilities = staffed
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        deadline = start + timedelta(days=14)
        campaign = reviews.review_campaign_start(actor=org_admin, organization=org, deadline=deadline)
        kept, lapsing = eligibilities[0], eligibilities[1]
        reviews.review_item_decide(actor=org_admin, item=_item(campaign, kept), decision=RECERTIFIED)
        clock.move_to(deadline - timedelta(seconds=1))
        open_request = AccessRequestFactory(
            technician=technicians[1], role=role, organization=org, status=AccessRequest.Status.PENDING
        )
        assert reviews.review_campaigns_close_due() == 0
        assert Eligibility.objects.filter(ended_at__isnull=False).count() == 0
        reviews.review_item_decide(actor=org_admin, item=_item(campaign, eligibilities[2]), decision=RECERTIFIED)
        clock.move_to(deadline)
        with pytest.raises(AccessError, match="closed"):
            reviews.review_item_decide(actor=org_admin, item=_item(campaign, lapsing), decision=RECERTIFIED)
        assert reviews.review_campaigns_close_due() == 1
    campaign.refresh_from_db()
    assert campaign.status == ReviewCampaign.Status.CLOSED and campaign.closed_at == deadline
    kept.refresh_from_db()
    lapsing.refresh_from_db()
    open_request.refresh_from_db()
    assert kept.ended_at is None
    assert lapsing.ended_at == deadline and lapsing.ended_by is None
    assert open_request.status == AccessRequest.Status.CANCELLED
    assert _item(campaign, lapsing).decision == ReviewItem.Decision.LAPSED
    ended = SecurityEvent.objects.get(event_type="access.eligibility_ended")
    assert ended.target_id == str(lapsing.pk) and ended.actor_kind == "system"
    closed = SecurityEvent.objects.get(event_type="access.review_closed")
    assert closed.details["lapsed"] == [lapsing.pk]
    assert closed.details["recertified_count"] == 2 and closed.details["lapsed_count"] == 1
    assert reviews.review_campaigns_close_due() == 0


# --- Quarterly campaigns ----------------------------------------------------------------------


def test_a_campaign_starts_by_itself_every_quarter(org, other_org, org_admin, role):
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        EligibilityFactory(technician=technician_for(org), role=role, organization=org)
        clock.shift(timedelta(days=90) - timedelta(seconds=1))
        assert reviews.review_campaigns_start_due() == 0  # the oldest eligibility is not yet 90 days old
        clock.shift(timedelta(seconds=1))
        assert reviews.review_campaigns_start_due() == 1  # other_org has nothing to review
        first = ReviewCampaign.objects.get()
        assert first.organization == org and first.started_by is None
        assert reviews.review_campaigns_start_due() == 0  # one is open
        clock.move_to(first.deadline)
        reviews.review_campaigns_close_due()
        clock.move_to(first.started_at + timedelta(days=90) - timedelta(seconds=1))
        assert reviews.review_campaigns_start_due() == 0
        clock.shift(timedelta(seconds=1))
        assert reviews.review_campaigns_start_due() == 0  # the lapsed eligibility ended: nothing left
        EligibilityFactory(technician=technician_for(org), role=role, organization=org)
        assert reviews.review_campaigns_start_due() == 1
    assert SecurityEvent.objects.filter(event_type="access.review_started", details__scheduled=True).count() == 2


def test_the_schedule_can_be_turned_off(settings, org, role):
    settings.ACCESS_REVIEW_INTERVAL_DAYS = 0
    with time_machine.travel(timezone.now() - timedelta(days=400), tick=False):
        EligibilityFactory(technician=technician_for(org), role=role, organization=org)
    assert reviews.review_campaigns_start_due() == 0


# --- The campaign page ------------------------------------------------------------------------


@pytest.fixture
def campaign(org, org_admin, staffed):
    return reviews.review_campaign_start(actor=org_admin, organization=org)


@pytest.fixture
def admin_client(client, org):
    admin = org_admin_for(org, mfa=True)
    client.force_login(admin)
    client.admin = admin
    return client


def test_the_campaign_page_shows_progress_and_filters_pending(admin_client, org, org_admin, campaign, staffed):
    reviews.review_item_decide(actor=org_admin, item=_item(campaign, staffed[2][0]), decision=RECERTIFIED)
    url = reverse("access:review_detail", args=[org.slug, campaign.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'max="3" value="1"' in html and "1 of 3" in text(page) and "(33%)" in text(page)
    assert text(page).count("Re-certify") >= 2
    pending = admin_client.get(url + "?show=pending")
    assert str(staffed[0][0]) not in text(pending)
    assert str(staffed[0][1]) in text(pending)


def test_deciding_on_the_page(admin_client, org, campaign, staffed):
    item = _item(campaign, staffed[2][1])
    url = reverse("access:review_item_decide", args=[org.slug, campaign.pk, item.pk])
    response = admin_client.post(url, {"decision": "removed", "reason": "No longer on the desk"})
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.decision == REMOVED and item.reviewer == admin_client.admin
    page = admin_client.get(response["Location"])
    assert "No longer on the desk" in text(page)


def test_another_organisations_campaign_and_items_are_404(client, org, other_org, role, campaign):
    EligibilityFactory(technician=technician_for(other_org), role=role, organization=other_org)
    other_admin = org_admin_for(other_org, mfa=True)
    theirs = reviews.review_campaign_start(actor=other_admin, organization=other_org)
    client.force_login(other_admin)
    item = campaign.items.first()
    assert client.get(reverse("access:review_detail", args=[org.slug, campaign.pk])).status_code == 404
    assert client.get(reverse("access:review_detail", args=[other_org.slug, campaign.pk])).status_code == 404
    decide = reverse("access:review_item_decide", args=[other_org.slug, theirs.pk, item.pk])
    assert client.post(decide, {"decision": "recertified"}).status_code == 404
    item.refresh_from_db()
    assert item.is_pending


def test_technicians_get_403_on_review_pages(client, org, campaign, staffed):
    client.force_login(technician_for(org, mfa=True))
    assert client.get(reverse("access:review_detail", args=[org.slug, campaign.pk])).status_code == 403
    item = campaign.items.first()
    decide = reverse("access:review_item_decide", args=[org.slug, campaign.pk, item.pk])
    assert client.post(decide, {"decision": "recertified"}).status_code == 403


def test_the_page_does_not_offer_a_self_review(client, org, campaign, staffed):
    _, admin_technician, _ = staffed
    client.force_login(admin_technician)
    page = client.get(reverse("access:review_detail", args=[org.slug, campaign.pk]))
    assert "Another org admin must review your own eligibility" in text(page)


@given(
    decision=st.one_of(
        st.sampled_from(["recertified", "removed", "pending", "lapsed", "ended", ""]), st.text(max_size=20)
    ),
    reason=st.text(max_size=250),
    which=st.integers(min_value=0, max_value=3),
)
@PROPERTY
def test_arbitrary_decision_posts_never_fail_and_bad_ones_change_nothing(
    admin_client, org, campaign, decision, reason, which
):
    ReviewItem.objects.filter(campaign=campaign).update(decision="pending", reviewer=None, decided_at=None, reason="")
    Eligibility.objects.filter(organization=org).update(ended_at=None, ended_by=None)
    items = list(campaign.items.order_by("pk"))
    item_pk = items[which].pk if which < len(items) else 10**9
    url = reverse("access:review_item_decide", args=[org.slug, campaign.pk, item_pk])
    response = admin_client.post(url, {"decision": decision, "reason": reason})
    collapsed = " ".join(reason.split())
    acceptable = (
        which < len(items)
        and "\x00" not in reason
        and len(reason.strip()) <= 200
        and (decision == "recertified" or (decision == "removed" and len(collapsed) >= 5))
    )
    assert response.status_code == (302 if which < len(items) else 404)
    decided = ReviewItem.objects.filter(campaign=campaign).exclude(decision="pending")
    ended = Eligibility.objects.filter(organization=org, ended_at__isnull=False)
    if acceptable:
        assert list(decided.values_list("pk", "decision")) == [(item_pk, decision)]
        assert ended.count() == (1 if decision == "removed" else 0)
    else:
        assert not decided.exists() and not ended.exists()


def test_the_admin_shows_campaigns_read_only(client, org, campaign):
    from tests.accounts.factories import UserFactory

    root = UserFactory(is_staff=True, is_superuser=True, mfa=True)
    client.force_login(root)
    assert client.get(reverse("admin:access_reviewcampaign_changelist")).status_code == 200
    change = client.get(reverse("admin:access_reviewcampaign_change", args=[campaign.pk]))
    assert change.status_code == 200 and b'name="_save"' not in change.content
    assert client.get(reverse("admin:access_reviewitem_changelist")).status_code == 200
    assert client.get(reverse("admin:access_reviewcampaign_add")).status_code == 403
    assert client.post(reverse("admin:access_reviewcampaign_delete", args=[campaign.pk])).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_concurrent_decisions_and_an_eligibility_end_decide_once_without_deadlock(org, role):
    from tests.access.test_concurrency import all_at_once

    admins = [org_admin_for(org) for _ in range(3)]
    eligibility = EligibilityFactory(technician=technician_for(org), role=role, organization=org)
    campaign = reviews.review_campaign_start(actor=admins[0], organization=org)
    item = campaign.items.get()
    works = [
        lambda: reviews.review_item_decide(actor=admins[0], item=item, decision=RECERTIFIED),
        lambda: reviews.review_item_decide(actor=admins[1], item=item, decision=REMOVED, reason="Not needed now"),
        lambda: eligibility_end(actor=admins[2], eligibility=eligibility, reason="Left the desk"),
        lambda: reviews.review_item_decide(actor=admins[2], item=item, decision=RECERTIFIED),
    ]
    results = all_at_once(works)
    item.refresh_from_db()
    eligibility.refresh_from_db()
    assert item.decision != ReviewItem.Decision.PENDING
    decided = SecurityEvent.objects.filter(event_type="access.review_item_decided")
    assert decided.count() == (0 if item.decision == ReviewItem.Decision.ENDED else 1)
    assert SecurityEvent.objects.filter(event_type="access.eligibility_ended").count() == (
        0 if item.decision == RECERTIFIED and results[2] == "refused" else 1
    )
    assert (eligibility.ended_at is None) == (item.decision == RECERTIFIED and results[2] == "refused")
