from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from bonefe.service import views

urlpatterns = [
    path("", views.request_list, name="request-list"),
    path("requests/new/", views.request_new, name="request-new"),
    path("requests/<uuid:pk>/", views.request_detail, name="request-detail"),
    path("requests/<uuid:pk>/report/", views.report_html, name="report-html"),
    path("requests/<uuid:pk>/report.pdf", views.report_pdf, name="report-pdf"),
    path("requests/<uuid:pk>/log/", views.run_log, name="run-log"),
    path("requests/<uuid:pk>/rerun/", views.rerun, name="rerun"),
    path("requests/<uuid:pk>/cancel/", views.cancel, name="cancel"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
