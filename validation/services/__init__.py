"""Every change to verification state goes through these functions (see DESIGN.md)."""

from validation.services._common import VerificationError
from validation.services.answers import push_challenge_for_link, push_respond, sms_code_check, totp_check
from validation.services.approvals import approval_start
from validation.services.approver import (
    approval_decide,
    approval_for_link,
    approver_code_confirm,
    approver_code_request,
)
from validation.services.challenges import (
    challenge_delivery_update,
    challenge_dispatch,
    challenge_send_failed,
    challenge_start,
)
from validation.services.enrollment import (
    enrollment_confirm,
    enrollment_dispatch,
    enrollment_for_link,
    enrollment_otpauth_uri,
    enrollment_start,
)
from validation.services.policies import may_edit_policies, policies_for, policy_delete, policy_for, policy_update
from validation.services.requests import (
    verification_cancel,
    verification_consume,
    verification_expire_stale,
    verification_request_create,
)

__all__ = [
    "VerificationError",
    "approval_decide",
    "approval_for_link",
    "approval_start",
    "approver_code_confirm",
    "approver_code_request",
    "challenge_delivery_update",
    "challenge_dispatch",
    "challenge_send_failed",
    "challenge_start",
    "enrollment_confirm",
    "enrollment_dispatch",
    "enrollment_for_link",
    "enrollment_otpauth_uri",
    "enrollment_start",
    "may_edit_policies",
    "policies_for",
    "policy_delete",
    "policy_for",
    "policy_update",
    "push_challenge_for_link",
    "push_respond",
    "sms_code_check",
    "totp_check",
    "verification_cancel",
    "verification_consume",
    "verification_expire_stale",
    "verification_request_create",
]
