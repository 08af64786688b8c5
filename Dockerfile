# Soteria's image: web (gunicorn) and worker (manage.py qcluster) share it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SOTERIA_DATA_DIR=/app/data

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
