from django.urls import path

from audit.views import events, export, report

app_name = "audit"

urlpatterns = [
    path("", events.event_list, name="event_list"),
    path("events/<int:pk>/", events.event_detail, name="event_detail"),
    path("people/<int:pk>/", events.person_timeline, name="person_timeline"),
    path("staff/<int:pk>/", events.staff_timeline, name="staff_timeline"),
    path("export.csv", export.export_csv, name="export_csv"),
    path("export.jsonl", export.export_jsonl, name="export_jsonl"),
    path("report/", report.report, name="report"),
    path("report/print/", report.report_print, name="report_print"),
]
