FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    WALKIN_DATABASE_URL=sqlite:////data/walkin.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY connector ./connector
COPY mappings ./mappings
COPY sync ./sync
COPY wsgi.py ./
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /app walkin \
    && mkdir -p /data && chown walkin /data

USER walkin
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status == 200 else 1)"
# `walkin serve` migrates once, then runs gunicorn with the server options of
# connector/server.py (one place: worker class, limits, SCIM error bodies).
CMD ["walkin", "serve", "--host", "0.0.0.0", "--port", "8000"]
