from django.urls import path

from validation.views import approvals, approver, end_user, lockout, outbox, policies, technician, webhooks

app_name = "validation"

urlpatterns = [
    # Technician (signed-in staff, scoped to assigned organisations).
    path("people/<int:pk>/verify/", technician.verification_start, name="start"),
    path("verifications/", technician.verification_list, name="list"),
    path("verifications/<int:pk>/", technician.verification_detail, name="detail"),
    path("verifications/<int:pk>/status/", technician.verification_status, name="status"),
    path("verifications/<int:pk>/send/", technician.challenge_send, name="send"),
    path("verifications/<int:pk>/totp/", technician.totp_check, name="totp_check"),
    path("verifications/<int:pk>/challenges/<int:challenge_pk>/code/", technician.code_check, name="code_check"),
    path("verifications/<int:pk>/cancel/", technician.verification_cancel, name="cancel"),
    path("verifications/<int:pk>/approval/", approvals.approval_start, name="approval_start"),
    path("verifications/<int:pk>/approval/peer/", approvals.peer_picker, name="peer_picker"),
    path("people/<int:pk>/enrol-authenticator/", technician.enrollment_start, name="enrollment_start"),
    path("people/<int:pk>/verification-lock/lift/", lockout.lock_lift, name="lock_lift"),
    # Org admins: policies.
    path("organisations/<slug:slug>/policies/", policies.policy_list, name="policy_list"),
    path("organisations/<slug:slug>/policies/<str:action>/", policies.policy_edit, name="policy_edit"),
    # End users on their phones: no login; the signed one-time link is the credential.
    path("r/<str:token>/", end_user.push_respond, name="push_respond"),
    path("e/<str:token>/", end_user.enroll, name="enroll"),
    path("f/<str:token>/", lockout.fraud_report, name="fraud_report"),
    path("a/<str:token>/", approver.approver, name="approver"),
    path("a/<str:token>/code/", approver.approver_code, name="approver_code"),
    path("a/<str:token>/confirm/", approver.approver_confirm, name="approver_confirm"),
    path("a/<str:token>/decide/", approver.approver_decide, name="approver_decide"),
    # Twilio (signature-checked).
    path("webhooks/twilio/status/", webhooks.twilio_status, name="twilio_status"),
    path("webhooks/twilio/inbound/", webhooks.twilio_inbound, name="twilio_inbound"),
    # Development outbox (only with the outbox on: DEBUG and no Twilio credentials).
    path("dev/outbox/", outbox.outbox, name="outbox"),
    path("dev/outbox/reply/", outbox.outbox_reply, name="outbox_reply"),
]
