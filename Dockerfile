# Soteria's image: web (gunicorn) and worker (manage.py qcluster) share it.
# The restic binary (a static build) comes from the official image, the same version the
# restic driver's Jobs run by default (SOTERIA_RESTIC_IMAGE): Soteria runs it itself to list
# snapshots for the inventory and to initialise the repository (docs/restic.md).
FROM restic/restic:0.16.4 AS restic

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SOTERIA_DATA_DIR=/app/data

COPY --from=restic /usr/bin/restic /usr/local/bin/restic

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY manage.py ./
COPY soteria_site ./soteria_site
COPY backups ./backups
COPY policies ./policies
COPY templates ./templates
# Static files are served by WhiteNoise from the installed packages (no collectstatic step).
RUN useradd --uid 10001 --user-group --no-create-home soteria \
    && mkdir -p /app/data && chown soteria:soteria /app/data

USER 10001
EXPOSE 8080
CMD ["gunicorn", "-c", "soteria_site/gunicorn.conf.py", "soteria_site.wsgi"]
