import base64

from django.core.management.base import BaseCommand

from audit import keys
from audit.checkpoints import checkpoint_write


class Command(BaseCommand):
    help = (
        "Seal pending events and write a signed checkpoint of the chain head now (the beat task "
        "does this every 5 minutes), e.g. before and after rotating a key. With --public-key, "
        "print the signing key's public half (base64) instead: give it to whoever verifies "
        "checkpoint copies, and to AUDIT_SIGNING_RETIRED_PUBLIC_KEYS when the key is rotated."
    )

    def add_arguments(self, parser):
        parser.add_argument("--public-key", action="store_true", help="Print the public key and stop.")

    def handle(self, *args, public_key, **options):
        if public_key:
            raw = keys.public_key_bytes(keys.signing_key().public_key())
            self.stdout.write(base64.b64encode(raw).decode())
            return
        checkpoint = checkpoint_write(force=True)
        self.stdout.write(f"Checkpoint #{checkpoint.pk}: sequence {checkpoint.sequence}, hash {checkpoint.hash}")
