from django.urls import path

from access.views import actions, approvals, grants, locked_staff, org_admin, requests, reviews

app_name = "access"

urlpatterns = [
    # Technicians: their grants and requests.
    path("", grants.my_grants, name="my_grants"),
    path("live/", grants.my_grants_live, name="my_grants_live"),
    path("requests/new/", requests.request_create, name="request_create"),
    path("requests/<int:pk>/", requests.request_detail, name="request_detail"),
    path("requests/<int:pk>/activate/", requests.request_activate, name="request_activate"),
    path("requests/<int:pk>/cancel/", requests.request_cancel, name="request_cancel"),
    path("break-glass/", requests.break_glass, name="break_glass"),
    path("grants/<int:pk>/", grants.grant_detail, name="grant_detail"),
    path("grants/<int:pk>/live/", grants.grant_live, name="grant_live"),
    path("grants/<int:pk>/release/", grants.grant_release, name="grant_release"),
    # Approvers.
    path("approvals/", approvals.approval_queue, name="approvals"),
    path("requests/<int:pk>/approve/", approvals.request_approve, name="request_approve"),
    path("requests/<int:pk>/deny/", approvals.request_deny, name="request_deny"),
    # Org admins (the services check the organisation again).
    path("grants/<int:pk>/revoke/", grants.grant_revoke, name="grant_revoke"),
    path("grants/<int:pk>/review/", grants.break_glass_review, name="break_glass_review"),
    path("organisations/<slug:slug>/roles/", org_admin.role_list, name="role_list"),
    path("organisations/<slug:slug>/eligibilities/", org_admin.eligibility_list, name="eligibility_list"),
    path("organisations/<slug:slug>/eligibilities/<int:pk>/end/", org_admin.eligibility_end, name="eligibility_end"),
    path("organisations/<slug:slug>/grants/", org_admin.org_grants, name="org_grants"),
    # Org admins: access hygiene (reviews, staff locked for inactivity).
    path("organisations/<slug:slug>/reviews/", reviews.review_list, name="review_list"),
    path("organisations/<slug:slug>/reviews/start/", reviews.review_start, name="review_start"),
    path("organisations/<slug:slug>/reviews/<int:pk>/", reviews.review_detail, name="review_detail"),
    path(
        "organisations/<slug:slug>/reviews/<int:pk>/items/<int:item_pk>/decide/",
        reviews.review_item_decide,
        name="review_item_decide",
    ),
    path("organisations/<slug:slug>/locked-staff/", locked_staff.locked_staff, name="locked_staff"),
    path("organisations/<slug:slug>/locked-staff/<int:pk>/unlock/", locked_staff.staff_unlock, name="staff_unlock"),
    path("organisations/<slug:slug>/locked-staff/<int:pk>/close/", locked_staff.staff_close, name="staff_close"),
    # Gated helpdesk actions, started from the person page.
    path("people/<int:pk>/actions/<slug:action>/", actions.action_start, name="action_start"),
    path("actions/<int:pk>/", actions.action_detail, name="action_detail"),
]
