import re

from django.utils import timezone
from django_otp.oath import TOTP

from validation.models import OutboxMessage


def totp_code(raw_key: bytes, *, offset_steps: int = 0) -> str:
    totp = TOTP(raw_key, step=30, digits=6)
    totp.time = timezone.now().timestamp() + offset_steps * 30
    return f"{totp.token():06d}"


def last_text(to: str) -> str:
    return OutboxMessage.objects.filter(to=to).order_by("-id").first().body


def code_in(body: str) -> str:
    return re.search(r"code is (\d{6,8})", body).group(1)


def link_token_in(body: str) -> str:
    return re.search(r"/(?:r|e)/([^/\s]+)/", body).group(1)
