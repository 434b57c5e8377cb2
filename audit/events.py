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
    AUTH_SESSION_EXPIRED = "auth.session_expired", "Session reached its idle or absolute limit"
    AUTH_STAFF_CHANGED = "auth.staff_changed", "Staff account's flags, groups or permissions changed"
    AUTH_STAFF_LOCKED = "auth.staff_locked", "Staff account locked after days without sign-in"
    AUTH_STAFF_UNLOCKED = "auth.staff_unlocked", "Locked staff account unlocked"
    AUTH_STAFF_UNLOCK_REFUSED = "auth.staff_unlock_refused", "Staff member tried to unlock or close their own account"
    AUTH_STAFF_CLOSED = "auth.staff_closed", "Locked staff account closed for good"

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

    VERIFICATION_REQUEST_CREATED = "verification.request_created", "Caller verification started"
    VERIFICATION_REQUEST_VERIFIED = "verification.request_verified", "Caller verified: policy met"
    VERIFICATION_REQUEST_FAILED = "verification.request_failed", "Caller verification failed"
    VERIFICATION_REQUEST_EXPIRED = "verification.request_expired", "Caller verification expired"
    VERIFICATION_REQUEST_CANCELLED = "verification.request_cancelled", "Caller verification cancelled"
    VERIFICATION_REQUEST_CONSUMED = "verification.request_consumed", "Verified result used for an action"
    VERIFICATION_CHALLENGE_CREATED = "verification.challenge_created", "Challenge created"
    VERIFICATION_CHALLENGE_SENT = "verification.challenge_sent", "Challenge sent"
    VERIFICATION_CHALLENGE_DELIVERED = "verification.challenge_delivered", "Challenge delivered"
    VERIFICATION_CHALLENGE_UNDELIVERED = "verification.challenge_undelivered", "Challenge undelivered"
    VERIFICATION_CHALLENGE_SEND_FAILED = "verification.challenge_send_failed", "Challenge could not be sent"
    VERIFICATION_CHALLENGE_APPROVED = "verification.challenge_approved", "Challenge answered correctly"
    VERIFICATION_CHALLENGE_DENIED = "verification.challenge_denied", "Person denied the request"
    VERIFICATION_CHALLENGE_WRONG_ANSWER = "verification.challenge_wrong_answer", "Wrong code or number"
    VERIFICATION_CHALLENGE_EXPIRED = "verification.challenge_expired", "Challenge expired"
    VERIFICATION_FRAUD_REPORTED = "verification.fraud_reported", "Person reported: I didn't request this"
    VERIFICATION_PERSON_LOCKED = "verification.person_locked", "Verification locked for a person"
    VERIFICATION_LOCK_LIFTED = "verification.lock_lifted", "Verification lock lifted by an org admin"
    VERIFICATION_LOCK_LIFT_REFUSED = (
        "verification.lock_lift_refused",
        "The technician whose verification set a lock tried to lift it",
    )
    VERIFICATION_LINK_REJECTED = "verification.link_rejected", "Expired, used or tampered link refused"
    VERIFICATION_WEBHOOK_REJECTED = "verification.webhook_rejected", "Twilio webhook with a bad signature refused"
    VERIFICATION_POLICY_CHANGED = "verification.policy_changed", "Verification policy changed"
    VERIFICATION_ENROLLMENT_REQUESTED = "verification.enrollment_requested", "Authenticator enrolment link requested"
    VERIFICATION_ENROLLMENT_WRONG_CODE = (
        "verification.enrollment_wrong_code",
        "Wrong code during authenticator enrolment",
    )
    VERIFICATION_ENROLLMENT_SENT = "verification.enrollment_sent", "Authenticator enrolment link sent"
    VERIFICATION_ENROLLMENT_COMPLETED = "verification.enrollment_completed", "Person enrolled an authenticator"
    VERIFICATION_ENROLLMENT_FAILED = "verification.enrollment_failed", "Authenticator enrolment link not sent"
    VERIFICATION_SEND_LIMITED = "verification.send_limited", "Message not sent: a send limit was reached"
    VERIFICATION_APPROVER_CODE_SENT = "verification.approver_code_sent", "Approver's identity code sent"
    VERIFICATION_APPROVER_WRONG_CODE = "verification.approver_wrong_code", "Approver entered a wrong identity code"
    VERIFICATION_APPROVER_CONFIRMED = "verification.approver_confirmed", "Approver confirmed who they are"
    VERIFICATION_APPROVAL_DENIED = "verification.approval_denied", "Manager or peer denied the request"
    VERIFICATION_SELF_APPROVAL_REFUSED = (
        "verification.self_approval_refused",
        "Approval refused: the approver is the person or the technician",
    )

    ACCESS_ROLE_CREATED = "access.role_created", "JIT role created"
    ACCESS_ROLE_CHANGED = "access.role_changed", "JIT role changed"
    ACCESS_ELIGIBILITY_CREATED = "access.eligibility_created", "Technician made eligible for a JIT role"
    ACCESS_ELIGIBILITY_ENDED = "access.eligibility_ended", "JIT eligibility ended"
    ACCESS_REQUEST_CREATED = "access.request_created", "Access requested"
    ACCESS_APPROVAL_RECORDED = "access.approval_recorded", "Approver approved an access request"
    ACCESS_SELF_APPROVAL_REFUSED = "access.self_approval_refused", "Requester tried to approve their own request"
    ACCESS_REQUEST_APPROVED = "access.request_approved", "Access request approved (enough approvals)"
    ACCESS_REQUEST_DENIED = "access.request_denied", "Access request denied"
    ACCESS_REQUEST_CANCELLED = "access.request_cancelled", "Access request cancelled"
    ACCESS_REQUEST_EXPIRED = "access.request_expired", "Access request expired unreviewed"
    ACCESS_REQUEST_LAPSED = "access.request_lapsed", "Approved access request not activated in time"
    ACCESS_GRANT_ACTIVATED = "access.grant_activated", "JIT grant activated"
    ACCESS_GRANT_RELEASED = "access.grant_released", "JIT grant released early by the technician"
    ACCESS_GRANT_REVOKED = "access.grant_revoked", "JIT grant revoked"
    ACCESS_GRANT_EXPIRED = "access.grant_expired", "JIT grant expired; its permissions were removed"
    ACCESS_BREAK_GLASS_ACTIVATED = "access.break_glass_activated", "Break-glass access activated without approval"
    ACCESS_BREAK_GLASS_REVIEWED = "access.break_glass_reviewed", "Break-glass use reviewed"
    ACCESS_REVIEW_STARTED = "access.review_started", "Access review campaign started"
    ACCESS_REVIEW_ITEM_DECIDED = "access.review_item_decided", "Eligibility re-certified or removed in an access review"
    ACCESS_REVIEW_SELF_REFUSED = "access.review_self_refused", "Technician tried to review their own eligibility"
    ACCESS_REVIEW_CLOSED = "access.review_closed", "Access review campaign closed at its deadline"
    ACCESS_DIGEST_SENT = "access.digest_sent", "Daily access digest emailed to org admins"

    ACTION_PERFORMED = "action.performed", "Gated helpdesk action performed"
    ACTION_REFUSED = "action.refused", "Gated helpdesk action refused: grant or verification missing"
    ACTION_FAILED = "action.failed", "Gated helpdesk action failed in the directory connector"
    ACTION_CONTACT_NOTICE_SENT = "action.contact_notice_sent", "Contact change notice sent to an old or new contact"
    ACTION_CONTACT_NOTICE_FAILED = "action.contact_notice_failed", "Contact change notice could not be sent"
    ACTION_CONNECTOR_CONFIGURED = "action.connector_configured", "Organisation's directory connector changed"

    AUDIT_RETENTION_APPLIED = "audit.retention_applied", "Events older than the retention period dropped"
    AUDIT_EXPORTED = "audit.exported", "Security events exported"


class ActorKind(models.TextChoices):
    STAFF = "staff", "Staff user"
    SYSTEM = "system", "System"
    END_USER = "end_user", "End user via channel"
