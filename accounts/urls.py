from django.urls import path

from accounts import import_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("organisations/", views.organization_list, name="organization_list"),
    path("organisations/<slug:slug>/", views.organization_detail, name="organization_detail"),
    path("organisations/<slug:slug>/import/", import_views.people_import_upload, name="people_import"),
    path("organisations/<slug:slug>/import/<int:pk>/", import_views.people_import_job, name="people_import_job"),
    path(
        "organisations/<slug:slug>/import/<int:pk>/confirm/",
        import_views.people_import_confirm,
        name="people_import_confirm",
    ),
    path("people/", views.person_search, name="person_search"),
    path("people/<int:pk>/", views.person_detail, name="person_detail"),
]
