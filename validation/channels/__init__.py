"""Verification channels, one module each, behind ``validation.channels.base.Channel``."""

from __future__ import annotations

from validation.channels.approval import ManagerApprovalChannel, PeerApprovalChannel
from validation.channels.base import Channel, SendError
from validation.channels.email_code import EmailCodeChannel
from validation.channels.push import PushChannel
from validation.channels.sms_code import SmsCodeChannel
from validation.channels.sms_reply import SmsReplyChannel
from validation.channels.totp import TotpChannel

CHANNELS: dict[str, Channel] = {
    c.method: c
    for c in (
        PushChannel(),
        TotpChannel(),
        SmsCodeChannel(),
        SmsReplyChannel(),
        EmailCodeChannel(),
        ManagerApprovalChannel(),
        PeerApprovalChannel(),
    )
}


def channel_for(method: str) -> Channel:
    return CHANNELS[method]


__all__ = ["CHANNELS", "Channel", "SendError", "channel_for"]
