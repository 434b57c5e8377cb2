from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("organisations/", views.organization_list, name="organization_list"),
    path("organisations/<slug:slug>/", views.organization_detail, name="organization_detail"),
    path("people/", views.person_search, name="person_search"),
    path("people/<int:pk>/", views.person_detail, name="person_detail"),
]
