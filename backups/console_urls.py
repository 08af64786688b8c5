from django.urls import path

from . import console

app_name = "console"
urlpatterns = [
    path("", console.inventory_page, name="inventory"),
    path("pvc/<str:namespace>/<str:pvc>/", console.pvc_page, name="pvc"),
    path("pvc/<str:namespace>/<str:pvc>/backup", console.backup_action, name="backup"),
    path("pvc/<str:namespace>/<str:pvc>/restore", console.restore_action, name="restore"),
    path("namespace/<str:namespace>/backup", console.backup_namespace_action, name="backup-namespace"),
    path("namespace/<str:namespace>/restore", console.restore_namespace_page, name="restore-namespace"),
    path("restores/", console.restores_page, name="restores"),
    path("activity/", console.activity_page, name="activity"),
]
