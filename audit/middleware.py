from auditlog.context import set_extra_data
from auditlog.middleware import AuditlogMiddleware

from audit.field_history import attribution
from audit.recorder import request_id_for, source_ip_for


class FieldHistoryMiddleware(AuditlogMiddleware):
    """auditlog's middleware, made to agree with the security events: the source address
    comes from X-Forwarded-For only behind a trusted proxy (the stock one always believes
    the header), and the correlation id is the request id, not a header the client sets.
    The actor is also handed to the Celery tasks the request queues (audit.field_history)."""

    @staticmethod
    def _get_remote_addr(request):
        return source_ip_for(request)

    def __call__(self, request):
        context = self.get_extra_data(request)
        with attribution(context["actor"], cid=request_id_for(request)), set_extra_data(context_data=context):
            return self.get_response(request)
