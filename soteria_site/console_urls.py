"""The console's pages, from both apps, under one URL namespace."""

from django.urls import path

from backups import console
from backups.console import swap as console_swap
from policies import console as policies_console

app_name = "console"
urlpatterns = [
    path("", console.inventory_page, name="inventory"),
    path("pvc/<str:namespace>/<str:pvc>/", console.pvc_page, name="pvc"),
    path("pvc/<str:namespace>/<str:pvc>/backup", console.backup_action, name="backup"),
    path("pvc/<str:namespace>/<str:pvc>/restore", console.restore_action, name="restore"),
    path("pvc/<str:namespace>/<str:pvc>/drill", console.drill_action, name="drill"),
    path("namespace/<str:namespace>/backup", console.backup_namespace_page, name="backup-namespace"),
    path("namespace/<str:namespace>/restore", console.restore_namespace_page, name="restore-namespace"),
    path("restores/", console.restores_page, name="restores"),
    path("restores/swap/", console_swap.swap_page, name="swap"),
    path("restores/swap/undo", console_swap.undo_action, name="swap-undo"),
    path("policies/", policies_console.policies_page, name="policies"),
    path("policies/save", policies_console.save_action, name="policy-save"),
    path("policies/<str:policy_id>/delete", policies_console.delete_action, name="policy-delete"),
    path("activity/", console.activity_page, name="activity"),
    path("activity/running", console.running_fragment, name="activity-running"),
]
