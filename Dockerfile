# syntax=docker/dockerfile:1
# GPU price-arbitrage broker.
#   docker build -t gpu-broker .
#   docker run --rm -e BROKER_DATABASE_URL=postgresql://... gpu-broker db upgrade   # migrations: a separate step
#   docker run -p 8000:8000 -e BROKER_DATABASE_URL=postgresql://... gpu-broker      # broker serve --host 0.0.0.0
# Settings come from the environment: BROKER_DATABASE_URL, BROKER_CONFIG (default /app/config/broker.toml; the
# GPU catalog and rate cards are read from the same directory) and the providers' own credential variables.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv with the dependencies and the project, nothing else -------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# dependencies first, from pyproject alone, so a source change does not reinstall them
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY broker ./broker
COPY adapters ./adapters
COPY migrations ./migrations
COPY config ./config
# editable: migrations/ and config/ are found beside the package (broker.settings.PROJECT_ROOT = /app), and the
# entry points (the `broker` command, the price-source plugins) are registered in the venv
RUN pip install --no-deps -e . \
    && python -m compileall -q /app/broker /app/adapters

# --- runtime: the slim base, the venv and the sources, run as an unprivileged user --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="gpu-broker" \
      org.opencontainers.image.description="Multi-cloud GPU price-arbitrage broker" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 broker \
    && useradd --system --uid 10001 --gid broker --home-dir /var/lib/broker --create-home --shell /usr/sbin/nologin broker
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BROKER_CONFIG=/app/config/broker.toml \
    BROKER_DATA_DIR=/var/lib/broker
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# liveness only (the process answers); readiness (database, migrations, index) is /readyz for orchestrators
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["broker"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
