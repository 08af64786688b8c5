"""`manage.py qcluster`, Soteria's worker: django-q2's cluster, after upserting
the schedules declared in code, queueing those that run at start (the inventory refresh:
/metrics has its per-PVC gauges seconds after a restart, not at the first scheduled
tick) and clearing metric files of dead processes."""

from django.conf import settings
from django_q.management.commands.qcluster import Command as QclusterCommand

from soteria_site import prometheus_dir
from soteria_site.core import schedules


class Command(QclusterCommand):
    help = "Starts Soteria's worker: upserts the schedules, then runs the django-q2 cluster."

    def handle(self, *args, **options):
        prometheus_dir.remove_dead_process_files(settings.SOTERIA_METRICS_DIR)
        names = schedules.upsert()
        self.stdout.write(f"soteria: schedules upserted: {', '.join(names) or 'none'}")
        queued = schedules.start_now()
        self.stdout.write(f"soteria: queued at start: {', '.join(queued) or 'none'}")
        return super().handle(*args, **options)
